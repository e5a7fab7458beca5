package main

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestModuleNamesWhatWasBuilt protects a replaced module's entry: the SBOM
// names the code that was linked (the replacement), keeping the original.
func TestModuleNamesWhatWasBuilt(t *testing.T) {
	got := module(&debug.Module{
		Path: "example.com/a", Version: "v1.0.0", Sum: "h1:orig=",
		Replace: &debug.Module{Path: "example.com/fork", Version: "v1.0.1", Sum: "h1:fork="},
	})
	want := component{Type: "library", BOMRef: "pkg:golang/example.com/fork@v1.0.1", Name: "example.com/fork", Version: "v1.0.1",
		PURL:       "pkg:golang/example.com/fork@v1.0.1",
		Properties: []property{{"go:replaces", "example.com/a@v1.0.0"}, {"go:sum", "h1:fork="}}}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("module:\n got %s\nwant %s", g, w)
	}
}

// TestPURLEscapes protects package URLs from characters a purl segment may
// not hold; '+' (in versions with build metadata) included.
func TestPURLEscapes(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"github.com/cespare/xxhash/v2", "v2.3.0"}:          "pkg:golang/github.com/cespare/xxhash/v2@v2.3.0",
		{"example.com/a b", "v0.0.0-2026-abc+incompatible"}: "pkg:golang/example.com/a%20b@v0.0.0-2026-abc%2Bincompatible",
		{"stdlib", ""}: "pkg:golang/stdlib",
	} {
		if got := purl(in[0], in[1]); got != want {
			t.Errorf("purl(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}

// TestSBOMOfATestBinary runs the command on this test's own binary, which
// carries build information like any go-built binary.
func TestSBOMOfATestBinary(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-version", "v9.9.9", os.Args[0]}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var b bom
	if err := json.Unmarshal(stdout.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if b.BOMFormat != "CycloneDX" || b.SpecVersion != "1.5" || b.Metadata.Component.Version != "v9.9.9" {
		t.Errorf("header %q %q %q", b.BOMFormat, b.SpecVersion, b.Metadata.Component.Version)
	}
	if len(b.Components) == 0 || b.Components[0].Name != "stdlib" || b.Components[0].Version != runtime.Version() {
		t.Errorf("first component %+v, want stdlib %s", b.Components[0], runtime.Version())
	}
	if err := run([]string{os.Args[0]}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "usage: sbom -version VERSION") {
		t.Errorf("without -version: %v, want the usage", err)
	}
}
