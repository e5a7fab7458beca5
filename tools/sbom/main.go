// Command sbom writes a CycloneDX 1.5 JSON SBOM for a Go binary from the build
// information the Go toolchain embeds in it (what `go version -m` prints): the
// main module, every module linked in with its version and go.sum hash, and the
// Go standard library of the toolchain that built it. It reads only the binary:
// no network, no module cache.
//
//	go run ./tools/sbom -version v0.4.0 -o dist/agent-linux-amd64.cdx.json dist/agent-linux-amd64
package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "sbom: %v\n", err)
		os.Exit(1)
	}
}

// The subset of CycloneDX 1.5 (https://cyclonedx.org/docs/1.5/json/) written here.
type bom struct {
	BOMFormat   string       `json:"bomFormat"`
	SpecVersion string       `json:"specVersion"`
	Version     int          `json:"version"`
	Metadata    metadata     `json:"metadata"`
	Components  []component  `json:"components"`
	Deps        []dependency `json:"dependencies"`
}

type metadata struct {
	Component component `json:"component"`
}

type component struct {
	Type        string     `json:"type"`
	BOMRef      string     `json:"bom-ref"`
	Name        string     `json:"name"`
	Version     string     `json:"version"`
	Description string     `json:"description,omitempty"`
	PURL        string     `json:"purl"`
	Hashes      []hash     `json:"hashes,omitempty"`
	Properties  []property `json:"properties,omitempty"`
}

type hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type dependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sbom", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "the release `version` of the main module (scripts/version.sh); required")
	out := fs.String("o", "-", "write the SBOM to `file` (- for stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *version == "" {
		return errors.New("usage: sbom -version VERSION [-o FILE] BINARY")
	}
	bin := fs.Arg(0)
	b, err := build(bin, *version)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if *out == "-" {
		_, err = stdout.Write(data)
		return err
	}
	return os.WriteFile(*out, data, 0o644)
}

func build(bin, version string) (*bom, error) {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read build information of %s: %w", bin, err)
	}
	if info.Main.Path == "" {
		return nil, fmt.Errorf("%s names no main module: build it from the module, not with go run", bin)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)

	main := component{
		Type:    "application",
		BOMRef:  purl(info.Main.Path, version),
		Name:    info.Main.Path,
		Version: version,
		PURL:    purl(info.Main.Path, version),
		Hashes:  []hash{{Alg: "SHA-256", Content: hex.EncodeToString(sum[:])}},
		Properties: []property{
			{Name: "go:package", Value: info.Path},
			{Name: "go:toolchain", Value: info.GoVersion},
		},
	}
	for _, s := range info.Settings {
		main.Properties = append(main.Properties, property{Name: "go:build:" + s.Key, Value: s.Value})
	}

	// The standard library and runtime are linked in too; scanners such as
	// govulncheck and Syft know them as the "stdlib" module of the toolchain.
	std := component{
		Type:        "library",
		BOMRef:      purl("stdlib", info.GoVersion),
		Name:        "stdlib",
		Version:     info.GoVersion,
		Description: "the Go standard library and runtime of the toolchain that built the binary",
		PURL:        purl("stdlib", strings.TrimPrefix(info.GoVersion, "go")),
	}
	b := &bom{BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1, Metadata: metadata{Component: main}}
	b.Components = append(b.Components, std)
	refs := []string{std.BOMRef}
	for _, m := range info.Deps {
		c := module(m)
		b.Components = append(b.Components, c)
		refs = append(refs, c.BOMRef)
	}
	b.Deps = []dependency{{Ref: main.BOMRef, DependsOn: refs}}
	return b, nil
}

// module is a linked-in module as it was built: the replacement, if go.mod
// replaced it, with the original path kept as a property.
func module(m *debug.Module) component {
	c := component{Type: "library", Name: m.Path, Version: m.Version}
	sum := m.Sum
	if r := m.Replace; r != nil {
		c.Name, c.Version, sum = r.Path, r.Version, r.Sum
		c.Properties = append(c.Properties, property{Name: "go:replaces", Value: m.Path + "@" + m.Version})
	}
	if sum != "" {
		c.Properties = append(c.Properties, property{Name: "go:sum", Value: sum})
	}
	c.PURL = purl(c.Name, c.Version)
	c.BOMRef = c.PURL
	return c
}

// purl is the package URL of a Go module (https://github.com/package-url/purl-spec,
// type golang): the module path, each segment percent-encoded, then the version.
func purl(path, version string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = escape(s)
	}
	p := "pkg:golang/" + strings.Join(segs, "/")
	if version != "" {
		p += "@" + escape(version)
	}
	return p
}

// escape percent-encodes what a purl segment may not hold as is.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte(".-_~", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
