package ecssecretsagent_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// releaseTag is the tag the release test puts on its clone (never on the repo).
const releaseTag = "v0.4.0"

// maxImageBytes is SPEC §8's image budget: under 16 MB.
const maxImageBytes = 16_000_000

// TestRelease runs `make release` on a clean clone of the repository, tagged
// releaseTag, and checks what a user downloads: a static binary per
// architecture, SHA256SUMS that match, an SBOM per binary naming the modules
// linked in with go.mod's versions, and the tag in `agent version`. Then, with
// a Docker daemon, `make image` for each architecture. It builds once (both
// architectures) and every check reads that build. It tests what is committed:
// the clone has no uncommitted change.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the agent twice; skipped with -short")
	}
	for _, tool := range []string{"git", "make", "go", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on PATH", tool)
		}
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not a git checkout: nothing to clone")
	}
	clone := filepath.Join(t.TempDir(), "src")
	runIn(t, "", nil, "git", "clone", "-q", strings.TrimSpace(string(root)), clone)
	runIn(t, clone, nil, "git", "tag", releaseTag)
	revision := strings.TrimSpace(runIn(t, clone, nil, "git", "rev-parse", "HEAD"))
	// Offline: the module cache only.
	goEnv := []string{"GOPROXY=off"}
	runIn(t, clone, goEnv, "make", "-s", "release")
	dist := filepath.Join(clone, "dist")

	arches := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	binaries := []string{"agent-linux-amd64", "agent-linux-arm64"}

	t.Run("static binary per architecture", func(t *testing.T) {
		for arch, machine := range arches {
			f, err := elf.Open(filepath.Join(dist, "agent-linux-"+arch))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != machine || f.Class != elf.ELFCLASS64 {
				t.Errorf("agent-linux-%s: machine %v class %v, want %v ELFCLASS64", arch, f.Machine, f.Class, machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("agent-linux-%s has a %v program header: not static (CGO_ENABLED=0)", arch, p.Type)
				}
			}
		}
	})

	t.Run("SHA256SUMS", func(t *testing.T) {
		sums := readSums(t, filepath.Join(dist, "SHA256SUMS"))
		want := []string{"agent-linux-amd64", "agent-linux-amd64.cdx.json", "agent-linux-arm64", "agent-linux-arm64.cdx.json"}
		var got []string
		for name := range sums {
			got = append(got, name)
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("SHA256SUMS lists %q, want %q", got, want)
		}
		for name, sum := range sums {
			if actual := fileSHA256(t, filepath.Join(dist, name)); actual != sum {
				t.Errorf("SHA256SUMS says %s is %s; it is %s", name, sum, actual)
			}
		}
		// Exactly what `sha256sum -c` accepts.
		runIn(t, dist, nil, "sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS")
	})

	t.Run("SBOM lists the modules of go.mod", func(t *testing.T) {
		required := goModRequires(t, clone)
		toolchain := strings.TrimSpace(runIn(t, clone, goEnv, "go", "env", "GOVERSION"))
		for _, bin := range binaries {
			arch := strings.TrimPrefix(bin, "agent-linux-")
			b := readSBOM(t, filepath.Join(dist, bin+".cdx.json"))
			if b.BOMFormat != "CycloneDX" || b.SpecVersion != "1.5" {
				t.Errorf("%s SBOM: format %q %q, want CycloneDX 1.5", bin, b.BOMFormat, b.SpecVersion)
			}
			m := b.Metadata.Component
			wantPURL := "pkg:golang/github.com/ecs-secrets-agent/ecs-secrets-agent@" + releaseTag
			if m.Name != "github.com/ecs-secrets-agent/ecs-secrets-agent" || m.Version != releaseTag || m.PURL != wantPURL {
				t.Errorf("%s SBOM names the agent %q %q %q, want the module at %s", bin, m.Name, m.Version, m.PURL, releaseTag)
			}
			if len(m.Hashes) != 1 || m.Hashes[0].Alg != "SHA-256" || m.Hashes[0].Content != fileSHA256(t, filepath.Join(dist, bin)) {
				t.Errorf("%s SBOM hashes %+v, want the binary's SHA-256", bin, m.Hashes)
			}
			if got := property(m.Properties, "go:build:GOARCH"); got != arch {
				t.Errorf("%s SBOM says GOARCH %q, want %q", bin, got, arch)
			}

			// The modules the agent links for this platform, as go resolves them.
			linked := map[string]string{}
			deps := runIn(t, clone, append(goEnv, "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0"),
				"go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}", "./cmd/agent")
			for _, line := range strings.Fields(strings.ReplaceAll(deps, " ", "@")) {
				path, version, _ := strings.Cut(line, "@")
				linked[path] = version
			}
			listed := map[string]string{}
			for _, c := range b.Components {
				if c.Name == "stdlib" {
					if c.Version != toolchain || c.PURL != "pkg:golang/stdlib@"+strings.TrimPrefix(toolchain, "go") {
						t.Errorf("%s SBOM: stdlib %q %q, want the toolchain %s", bin, c.Version, c.PURL, toolchain)
					}
					continue
				}
				if want := "pkg:golang/" + c.Name + "@" + c.Version; c.PURL != want || c.Type != "library" {
					t.Errorf("%s SBOM: %s is %s %q, want library %q", bin, c.Name, c.Type, c.PURL, want)
				}
				listed[c.Name] = c.Version
			}
			if _, ok := componentNamed(b.Components, "stdlib"); !ok {
				t.Errorf("%s SBOM does not name the Go toolchain's stdlib", bin)
			}
			if len(linked) == 0 {
				t.Fatal("go list found no module dependencies: the check would pass on anything")
			}
			for path, version := range linked {
				if listed[path] != version {
					t.Errorf("%s SBOM: %s at %q, want %q (linked in)", bin, path, listed[path], version)
				}
				if required[path] != version {
					t.Errorf("%s links %s %s, which go.mod requires at %q", bin, path, version, required[path])
				}
			}
			for path := range listed {
				if _, ok := linked[path]; !ok {
					t.Errorf("%s SBOM lists %s, which the binary does not link", bin, path)
				}
			}
			if len(b.Deps) != 1 || b.Deps[0].Ref != m.BOMRef || len(b.Deps[0].DependsOn) != len(b.Components) {
				t.Errorf("%s SBOM dependencies %+v, want the agent depending on all %d components", bin, b.Deps, len(b.Components))
			}
		}
	})

	t.Run("agent version prints the tag", func(t *testing.T) {
		bin := filepath.Join(dist, "agent-linux-"+runtime.GOARCH)
		if runtime.GOOS != "linux" || arches[runtime.GOARCH] == 0 {
			t.Skipf("cannot run linux/amd64 or linux/arm64 binaries on %s/%s", runtime.GOOS, runtime.GOARCH)
		}
		if got, want := runIn(t, "", nil, bin, "version"), "ecs-secrets-agent "+releaseTag+"\n"; got != want {
			t.Fatalf("agent version printed %q, want %q", got, want)
		}
	})

	t.Run("images", func(t *testing.T) {
		if err := exec.Command("docker", "info").Run(); err != nil {
			t.Skip("no Docker daemon answers `docker info`")
		}
		for arch := range arches {
			t.Run(arch, func(t *testing.T) {
				image := "ecs-secrets-agent-release-test:" + arch + "-" + strconv.Itoa(os.Getpid())
				t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", image).Run() })
				runIn(t, clone, goEnv, "make", "-s", "image", "ARCH="+arch, "IMAGE="+image)
				out := runIn(t, "", nil, "docker", "image", "inspect", "-f",
					`{{.Os}}/{{.Architecture}} {{.Config.User}} {{.Size}} {{index .Config.Labels "org.opencontainers.image.version"}} {{index .Config.Labels "org.opencontainers.image.revision"}}`, image)
				f := strings.Fields(out)
				if len(f) != 5 {
					t.Fatalf("docker image inspect printed %q", out)
				}
				if want := "linux/" + arch; f[0] != want {
					t.Errorf("%s image is %s, want %s", arch, f[0], want)
				}
				if f[1] != "65532:65532" {
					t.Errorf("%s image runs as %q, want 65532:65532", arch, f[1])
				}
				size, err := strconv.ParseInt(f[2], 10, 64)
				if err != nil || size >= maxImageBytes {
					t.Errorf("%s image is %s bytes, want under %d", arch, f[2], maxImageBytes)
				}
				if f[3] != releaseTag || f[4] != revision {
					t.Errorf("%s image labels version %q revision %q, want %q %q", arch, f[3], f[4], releaseTag, revision)
				}
				t.Logf("%s image: %s bytes", arch, f[2])
			})
		}
	})
}

// TestVersionFromGitTags protects the version forms scripts/version.sh
// documents, on a scratch repository.
func TestVersionFromGitTags(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	script, err := filepath.Abs(filepath.Join("scripts", "version.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}
	git := func(args ...string) string { return strings.TrimSpace(runIn(t, dir, env, "git", args...)) }
	version := func() string { return runIn(t, dir, env, script) }
	n := 0
	commit := func() string {
		n++
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(strconv.Itoa(n)), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "f")
		git("commit", "-q", "-m", "c"+strconv.Itoa(n))
		return git("rev-parse", "--short", "HEAD")
	}

	if got := version(); got != "dev\n" {
		t.Errorf("outside a git checkout: %q, want %q", got, "dev\n")
	}
	git("init", "-q")
	if got := version(); got != "dev\n" {
		t.Errorf("no commit yet: %q, want %q", got, "dev\n")
	}
	commit()
	h := commit()
	if got, want := version(), "v0.0.0-2-g"+h+"\n"; got != want {
		t.Errorf("no release tag: %q, want %q", got, want)
	}
	git("tag", "v0.4.0")
	if got := version(); got != "v0.4.0\n" {
		t.Errorf("on the tag: %q, want %q", got, "v0.4.0\n")
	}
	commit()
	git("tag", "latest") // not a release tag: ignored
	commit()
	h = commit()
	if got, want := version(), "v0.4.0-3-g"+h+"\n"; got != want {
		t.Errorf("three commits after the tag: %q, want %q", got, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "untracked"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := version(), "v0.4.0-3-g"+h+"\n"; got != want {
		t.Errorf("with an untracked file: %q, want %q", got, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := version(), "v0.4.0-3-g"+h+"-dirty\n"; got != want {
		t.Errorf("with a changed file: %q, want %q", got, want)
	}
	git("tag", "v0.5.0-rc.1")
	if got := version(); got != "v0.5.0-rc.1-dirty\n" {
		t.Errorf("on a pre-release tag, changed: %q, want %q", got, "v0.5.0-rc.1-dirty\n")
	}
}

// runIn runs a command in dir (the test's own if empty) with env added and
// returns its standard output; it fails the test, with standard error, if the
// command fails.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// readSums reads sha256sum's output format: "HEX  NAME" lines.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || strings.ContainsAny(name, "/ ") {
			t.Fatalf("SHA256SUMS line %q is not HEX  NAME", sc.Text())
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}

// goModRequires is go.mod's require list: module path → version.
func goModRequires(t *testing.T, dir string) map[string]string {
	t.Helper()
	var mod struct {
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal([]byte(runIn(t, dir, nil, "go", "mod", "edit", "-json")), &mod); err != nil {
		t.Fatal(err)
	}
	req := map[string]string{}
	for _, r := range mod.Require {
		req[r.Path] = r.Version
	}
	return req
}

type sbomComponent struct {
	Type, Name, Version, PURL string
	BOMRef                    string `json:"bom-ref"`
	Hashes                    []struct{ Alg, Content string }
	Properties                []struct{ Name, Value string }
}

type sbomDoc struct {
	BOMFormat, SpecVersion string
	Metadata               struct{ Component sbomComponent }
	Components             []sbomComponent
	Deps                   []struct {
		Ref       string
		DependsOn []string
	} `json:"dependencies"`
}

func readSBOM(t *testing.T, path string) sbomDoc {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b sbomDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func property(props []struct{ Name, Value string }, name string) string {
	for _, p := range props {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

func componentNamed(cs []sbomComponent, name string) (sbomComponent, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return sbomComponent{}, false
}
