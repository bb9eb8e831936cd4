// Package container_test proves the sidecar image as far as a machine without a container runtime allows.
package container_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// TestImageStartsWithItsDefaultConfigAsNonRoot builds the root filesystem as the Dockerfile's build stage does
// (container/build-rootfs.sh: a production caddy built the xcaddy way, static), builds the Dockerfile's final
// stage from it with podman (FROM scratch needs no registry), saves the image as an OCI archive and unpacks it,
// then runs the image's ENTRYPOINT and CMD, with its ENV, chrooted into the unpacked filesystem as the image's
// USER, until it answers its health and readiness checks and hands out a token from the emulator.
//
// Not proven here: that `docker build` runs the build stage (it needs the golang image from a registry), and
// the container runtime itself (namespaces, a read-only root mount, resource limits): podman cannot run
// containers on these machines. What stands in: chroot + setuid to the image's user, and a check that the
// process wrote nothing outside /tmp.
func TestImageStartsWithItsDefaultConfigAsNonRoot(t *testing.T) {
	testenv.Integration(t) // builds caddy
	podman, err := exec.LookPath("podman")
	if err != nil {
		testenv.SkipUnlessAllowed(t, "podman is not installed (apt-get install podman); it builds the image's final stage")
	}
	if os.Geteuid() != 0 {
		testenv.SkipUnlessAllowed(t, "chroot and switching to the image's user need root")
	}
	repo, _ := filepath.Abs("..")
	dir := t.TempDir()
	buildCtx := filepath.Join(dir, "context")
	run(t, "sh", filepath.Join(repo, "container", "build-rootfs.sh"), filepath.Join(buildCtx, "rootfs"), repo)

	stage := finalStage(t, filepath.Join(repo, "Dockerfile"))
	if err := os.WriteFile(filepath.Join(buildCtx, "Containerfile"), []byte(stage), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("localhost/token-injector-imagetest:%d", time.Now().UnixNano())
	run(t, podman, "build", "--pull=never", "-q", "-t", tag, "-f", filepath.Join(buildCtx, "Containerfile"), buildCtx)
	t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })
	archive := filepath.Join(dir, "image.tar")
	run(t, podman, "save", "--format", "oci-archive", "-o", archive, tag)

	root := filepath.Join(dir, "unpacked")
	cfg := unpackOCI(t, archive, filepath.Join(dir, "oci"), root)
	if cfg.User != "65532:65532" || len(cfg.Entrypoint) == 0 {
		t.Fatalf("image config: user %q, entrypoint %q", cfg.User, cfg.Entrypoint)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/bin/caddy")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("the image has no executable /usr/bin/caddy: %v", err)
	}
	if static, err := isStatic(filepath.Join(root, "usr/bin/caddy")); err != nil || !static {
		t.Errorf("caddy is not a static binary (it names a dynamic loader): %v", err)
	}

	idp, err := testenv.StartIdP(entraemu.DefaultConfig(), testenv.IdPOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	// The emulator's CA, as a deployment would mount a private CA: a file on the writable volume.
	if err := os.WriteFile(filepath.Join(root, "tmp", "emulator-ca.pem"), idp.CA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	port, admin := freePort(t), freePort(t)
	uid, gid := userOf(t, cfg.User)
	cmd := &exec.Cmd{
		Path: cfg.Entrypoint[0],
		Args: append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...),
		Env: append(append([]string{}, cfg.Env...),
			"AZURE_AUTHORITY_HOST="+idp.Server.URL,
			"AZURE_TENANT_ID="+entraemu.DefaultTenantID,
			"AZURE_CLIENT_ID="+entraemu.DefaultAddinClientID,
			"AZURE_CLIENT_SECRET="+entraemu.DefaultAddinSecret,
			"TOKEN_INJECTOR_APIS=graph https://graph.microsoft.com/User.Read; graphapp app_token https://graph.microsoft.com/.default",
			"TOKEN_INJECTOR_PORT="+port,
			"TOKEN_INJECTOR_ADMIN=127.0.0.1:"+admin,
			"SSL_CERT_FILE=/tmp/emulator-ca.pem"),
		Dir:         "/",
		SysProcAttr: &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uid, Gid: gid}},
	}
	logs := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})

	base := "http://127.0.0.1:" + port
	waitFor(t, exited, logs, base+"/healthz")
	if status, body := get(t, base+"/healthz"); status != 200 || body != "Healthy" {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	if status, body := get(t, base+"/readyz"); status != 200 || !strings.Contains(body, `"status":"Healthy"`) {
		t.Fatalf("/readyz: %d %s\n%s", status, body, logs.String())
	}
	if status, body := get(t, base+"/AuthorizationHeaderUnauthenticated/graphapp"); status != 200 || !strings.HasPrefix(body, `{"authorizationHeader":"Bearer ey`) {
		t.Fatalf("app token: %d %.80s", status, body)
	}
	if got := procUID(t, cmd.Process.Pid); got != strconv.Itoa(int(uid)) {
		t.Errorf("the process runs as uid %s, want the image's %d", got, uid)
	}
	for path := range snapshot(t, root) {
		if _, ok := before[path]; !ok && !strings.HasPrefix(path, "tmp/") {
			t.Errorf("the process wrote %s, outside /tmp: the root filesystem could not be read-only", path)
		}
	}
	if strings.Contains(logs.String(), entraemu.DefaultAddinSecret) {
		t.Error("the logs carry the client secret")
	}
}

// isStatic reports whether an ELF executable needs no dynamic loader (no PT_INTERP), as FROM scratch requires.
func isStatic(file string) (bool, error) {
	f, err := elf.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// finalStage is the Dockerfile's last stage with its COPY --from=build taken from the build context instead.
func finalStage(t *testing.T, dockerfile string) string {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.LastIndex(text, "\nFROM scratch")
	const copyLine = "COPY --from=build /rootfs/ /"
	if i < 0 || !strings.Contains(text[i:], copyLine) {
		t.Fatalf("the Dockerfile's final stage is not FROM scratch with %q", copyLine)
	}
	return strings.Replace(text[i+1:], copyLine, "COPY rootfs/ /", 1)
}

type imageConfig struct {
	User       string
	Env        []string
	Entrypoint []string
	Cmd        []string
}

// unpackOCI extracts an OCI archive's image: its layers into root, and its config.
func unpackOCI(t *testing.T, archive, layout, root string) imageConfig {
	t.Helper()
	untar(t, archive, layout, false)
	var index struct{ Manifests []struct{ Digest string } }
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("%d manifests", len(index.Manifests))
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ MediaType, Digest string }
	}
	readJSON(t, blob(layout, index.Manifests[0].Digest), &manifest)
	for _, l := range manifest.Layers {
		untar(t, blob(layout, l.Digest), root, strings.HasSuffix(l.MediaType, "gzip"))
	}
	var cfg struct{ Config imageConfig }
	readJSON(t, blob(layout, manifest.Config.Digest), &cfg)
	return cfg.Config
}

func blob(layout, digest string) string {
	return filepath.Join(layout, "blobs", strings.Replace(digest, ":", "/", 1))
}

func untar(t *testing.T, file, dst string, gzipped bool) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if gzipped {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if name == "." || strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			continue
		}
		p := filepath.Join(dst, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, fs.FileMode(h.Mode)&fs.ModePerm)
		case tar.TypeReg:
			err = writeFile(p, tr, fs.FileMode(h.Mode)&fs.ModePerm)
		default:
			continue
		}
		if err == nil {
			// Permissions as in the image (MkdirAll and umask would narrow them): /tmp must stay 1777.
			mode := fs.FileMode(h.Mode) & fs.ModePerm
			if h.Mode&0o1000 != 0 {
				mode |= fs.ModeSticky
			}
			err = os.Chmod(p, mode)
		}
		if err == nil {
			err = os.Lchown(p, h.Uid, h.Gid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(p string, r io.Reader, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot lists the paths under root.
func snapshot(t *testing.T, root string) map[string]struct{} {
	t.Helper()
	paths := map[string]struct{}{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		paths[filepath.ToSlash(rel)] = struct{}{}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func userOf(t *testing.T, user string) (uint32, uint32) {
	t.Helper()
	u, g, _ := strings.Cut(user, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		t.Fatalf("the image's user %q is not a numeric non-root uid:gid", user)
	}
	return uint32(uid), uint32(gid)
}

func procUID(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1] // the real uid; effective and saved follow
		}
	}
	return ""
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr[strings.LastIndexByte(addr, ':')+1:]
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// lockedBuffer collects the process's output, written by os/exec's goroutines while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls url until it answers, failing if the process exits first.
func waitFor(t *testing.T, exited <-chan error, logs *lockedBuffer, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the entrypoint exited: %v\n%s", err, logs.String())
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no answer from %s in 30s\n%s", url, logs.String())
}
