package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// repoRoot is where the deployment files live, relative to this package.
const repoRoot = "../.."

type instruction struct {
	cmd   string   // lower-cased instruction, e.g. "copy"
	args  []string // arguments as the parser split them
	flags []string // e.g. --from=build
	line  int
}

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	var out []instruction
	for _, n := range res.AST.Children {
		in := instruction{cmd: strings.ToLower(n.Value), flags: n.Flags, line: n.StartLine}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		out = append(out, in)
	}
	return out
}

// finalStage returns the instructions after the last FROM.
func finalStage(ins []instruction) []instruction {
	last := 0
	for i, in := range ins {
		if in.cmd == "from" {
			last = i
		}
	}
	return ins[last:]
}

func TestDockerfileRunsAsNonRoot(t *testing.T) {
	final := finalStage(parseDockerfile(t))
	var user string
	for _, in := range final {
		if in.cmd == "user" {
			user = strings.Join(in.args, " ")
		}
	}
	if user == "" {
		t.Fatal("final stage has no USER: the image would run as root")
	}
	name := strings.SplitN(user, ":", 2)[0]
	if name == "root" || name == "0" {
		t.Fatalf("final stage USER %q is root", user)
	}
}

func TestDockerfileEntrypointIsRagstream(t *testing.T) {
	final := finalStage(parseDockerfile(t))
	var entry, health []string
	for _, in := range final {
		switch in.cmd {
		case "entrypoint":
			entry = in.args
		case "healthcheck":
			health = in.args
		}
	}
	if len(entry) == 0 || filepath.Base(entry[0]) != "ragstream" {
		t.Fatalf("ENTRYPOINT %q does not start the ragstream binary", entry)
	}
	// The healthcheck must use the binary's own probe: distroless has no curl.
	joined := strings.Join(health, " ")
	if !strings.Contains(joined, "ragstream") || !strings.Contains(joined, "probe") {
		t.Fatalf("HEALTHCHECK %q does not use `ragstream probe`", joined)
	}
	// The binary the entrypoint names must be the one copied in.
	var copied bool
	for _, in := range final {
		if in.cmd == "copy" && len(in.args) > 0 && in.args[len(in.args)-1] == entry[0] {
			copied = true
		}
	}
	if !copied {
		t.Fatalf("no COPY in the final stage puts a file at %s", entry[0])
	}
}

func TestDockerfileCopySourcesExist(t *testing.T) {
	for _, in := range parseDockerfile(t) {
		if in.cmd != "copy" && in.cmd != "add" {
			continue
		}
		fromStage := false
		for _, f := range in.flags {
			if strings.HasPrefix(f, "--from") {
				fromStage = true
			}
		}
		if fromStage {
			continue
		}
		for _, src := range in.args[:len(in.args)-1] {
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("Dockerfile line %d: COPY source %q: %v", in.line, src, err)
			}
		}
	}
}

// TestDockerfileBuildLineBuilds runs the Dockerfile's own `go build` line
// here, with its ARG defaults, so a build that breaks in the image breaks here.
func TestDockerfileBuildLineBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	ins := parseDockerfile(t)
	args := map[string]string{}
	var build string
	for _, in := range ins {
		switch in.cmd {
		case "arg":
			for _, a := range in.args {
				k, v, _ := strings.Cut(a, "=")
				args[k] = v
			}
		case "run":
			line := strings.Join(in.args, " ")
			if strings.Contains(line, "go build") {
				build = line
			}
		}
	}
	if build == "" {
		t.Fatal("no RUN line with `go build` in the Dockerfile")
	}
	for k, v := range args {
		build = strings.ReplaceAll(build, "${"+k+"}", v)
		build = strings.ReplaceAll(build, "$"+k, v)
	}
	out := t.TempDir()
	build = regexp.MustCompile(`-o\s+\S+`).ReplaceAllString(build, "-o "+filepath.Join(out, "ragstream"))
	cmd := exec.Command("bash", "-c", build)
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Dockerfile build line failed: %s\n%v\n%s", build, err, b)
	}
	v, err := exec.Command(filepath.Join(out, "ragstream"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "ragstream dev (commit unknown") {
		t.Fatalf("built binary's version: %q %v (want the ARG defaults stamped in)", v, err)
	}
}
