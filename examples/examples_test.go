// Package examples_test checks that the deployment examples agree with the image (Dockerfile) and with their
// token injector config: names, ports, volumes, users, probes and environment variables.
package examples_test

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"go.yaml.in/yaml/v3"

	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// image holds what the Dockerfile promises a deployment.
type image struct {
	user, port string
	env        map[string]string
}

func readImage(t *testing.T) image {
	t.Helper()
	img := image{env: map[string]string{}}
	for _, line := range strings.Split(readFile(t, "../Dockerfile"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "USER":
			img.user = f[1]
		case "EXPOSE":
			img.port = f[1]
		case "ENV":
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				img.env[k] = v
			}
		}
	}
	if img.user == "" || img.port == "" {
		t.Fatalf("the Dockerfile lacks USER or EXPOSE: %+v", img)
	}
	// Caddy writes its config and data directories; a read-only root needs them on the /tmp volume.
	for _, k := range []string{"XDG_CONFIG_HOME", "XDG_DATA_HOME"} {
		if !strings.HasPrefix(img.env[k], "/tmp/") {
			t.Fatalf("the Dockerfile's %s is %q, not under /tmp", k, img.env[k])
		}
	}
	return img
}

// caddyfile is what a token injector config asks of its container.
type caddyfile struct {
	text     string
	port     string          // the sidecar's listener
	required map[string]bool // environment variables without a default
	redis    bool
}

var (
	envPlaceholder = regexp.MustCompile(`\{env\.([A-Z0-9_]+)\}|\{\$([A-Z0-9_]+)\}`)
	siteAddress    = regexp.MustCompile(`(?m)^:(\d+) \{`)
)

func parseCaddyfile(t *testing.T, text string) caddyfile {
	t.Helper()
	c := caddyfile{text: text, required: map[string]bool{}, redis: strings.Contains(text, "\t\tredis {")}
	for _, m := range envPlaceholder.FindAllStringSubmatch(text, -1) {
		c.required[m[1]+m[2]] = true
	}
	if m := siteAddress.FindStringSubmatch(text); m != nil {
		c.port = m[1]
	}
	if c.port == "" || !strings.Contains(text, "token_injector_sidecar") {
		t.Fatal("the config has no token_injector_sidecar site on a fixed port")
	}
	return c
}

// adapt runs the config through the real Caddyfile adapter with the plugin.
func adapt(t *testing.T, text string) {
	t.Helper()
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
	if err != nil && strings.Contains(err.Error(), "unknown subdirective") &&
		(strings.Contains(err.Error(), `"redis"`) || strings.Contains(err.Error(), `"client_assertion_file"`)) {
		testenv.SkipUnlessAllowed(t, "this build lacks the redis or client_assertion_file subdirective (issues 9 and 10): %v", err)
	}
	if err != nil {
		t.Fatalf("the example's Caddyfile does not adapt: %v", err)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docs decodes every YAML document of a file.
func docs(t *testing.T, name string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(readFile(t, name))))
	var out []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
}

// get walks a decoded YAML tree by keys (maps) and indexes (lists); nil when absent.
func get(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func named(items []any, name string) any {
	for _, it := range items {
		if get(it, "name") == name {
			return it
		}
	}
	return nil
}

// configPath is the --config argument of a token injector command.
func configPath(t *testing.T, args []any) string {
	t.Helper()
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			return str(args[i+1])
		}
	}
	t.Fatalf("no --config in %v", args)
	return ""
}

// redisHostPort is the host:port of a redis:// URL.
func redisHostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" && u.Scheme != "rediss" {
		t.Fatalf("REDIS_URL %q is not a redis URL", raw)
	}
	return u.Host
}

func TestKubernetesExample(t *testing.T) {
	img := readImage(t)
	dir := "kubernetes"
	// Every manifest is applied by the kustomization, and every resource it lists exists.
	var objects []map[string]any
	resources := list(get(docs(t, filepath.Join(dir, "kustomization.yaml"))[0], "resources"))
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(resources) != len(files)-1 {
		t.Errorf("kustomization lists %d resources, the directory has %d manifests", len(resources), len(files)-1)
	}
	for _, r := range resources {
		objects = append(objects, docs(t, filepath.Join(dir, str(r)))...)
	}
	find := func(kind, name string) map[string]any {
		for _, o := range objects {
			if o["kind"] == kind && get(o, "metadata", "name") == name {
				return o
			}
		}
		t.Fatalf("no %s %s", kind, name)
		return nil
	}

	app := find("Deployment", "app")
	pod := get(app, "spec", "template")
	if get(pod, "metadata", "labels", "azure.workload.identity/use") != "true" {
		t.Error("the pod lacks the label azure.workload.identity/use: \"true\"")
	}
	sa := find("ServiceAccount", str(get(pod, "spec", "serviceAccountName")))
	if str(get(sa, "metadata", "annotations", "azure.workload.identity/client-id")) == "" {
		t.Error("the service account lacks the azure.workload.identity/client-id annotation")
	}
	containers := list(get(pod, "spec", "containers"))
	for _, c := range containers {
		if get(c, "resources", "limits", "cpu") == nil || get(c, "resources", "limits", "memory") == nil {
			t.Errorf("container %v has no cpu and memory limits", get(c, "name"))
		}
	}
	ti := named(containers, "token-injector")
	if ti == nil {
		t.Fatal("no token-injector container")
	}

	// The config comes from the ConfigMap, mounted where --config points.
	cfgPath := configPath(t, list(get(ti, "args")))
	mount := named(list(get(ti, "volumeMounts")), "config")
	if str(get(mount, "mountPath")) != path.Dir(cfgPath) {
		t.Errorf("--config %s is not under the config mount %v", cfgPath, get(mount, "mountPath"))
	}
	cm := find("ConfigMap", str(get(named(list(get(pod, "spec", "volumes")), "config"), "configMap", "name")))
	text := str(get(cm, "data", path.Base(cfgPath)))
	cfg := parseCaddyfile(t, text)

	// Ports and probes: the image's port, the config's listener, the container port the probes use.
	port := named(list(get(ti, "ports")), "sidecar")
	if p := get(port, "containerPort"); p != mustAtoi(t, cfg.port) || cfg.port != img.port {
		t.Errorf("containerPort %v, config port %s, image EXPOSE %s: they must agree", p, cfg.port, img.port)
	}
	for probe, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if get(ti, probe, "httpGet", "path") != want || get(ti, probe, "httpGet", "port") != "sidecar" {
			t.Errorf("%s is %v, want GET %s on the sidecar port", probe, get(ti, probe), want)
		}
	}
	if want := "http://localhost:" + cfg.port; str(get(named(list(get(named(containers, "app"), "env")), "TOKEN_INJECTOR_URL"), "value")) != want {
		t.Errorf("the app does not call the sidecar at %s", want)
	}

	// The image's user, a read-only root, and /tmp (Caddy's directories) on a volume.
	uid := strings.Split(img.user, ":")[0]
	if get(ti, "securityContext", "runAsUser") != mustAtoi(t, uid) || get(ti, "securityContext", "readOnlyRootFilesystem") != true {
		t.Errorf("securityContext %v: want runAsUser %s and readOnlyRootFilesystem", get(ti, "securityContext"), uid)
	}
	tmp := named(list(get(ti, "volumeMounts")), "tmp")
	if get(tmp, "mountPath") != "/tmp" || get(named(list(get(pod, "spec", "volumes")), "tmp"), "emptyDir") == nil {
		t.Error("/tmp is not an emptyDir volume")
	}

	// Every variable the config needs is set, by the Deployment or by the workload identity webhook.
	injected := map[string]bool{"AZURE_CLIENT_ID": true, "AZURE_TENANT_ID": true, "AZURE_AUTHORITY_HOST": true,
		"AZURE_FEDERATED_TOKEN_FILE": true}
	env := map[string]any{}
	for _, e := range list(get(ti, "env")) {
		env[str(get(e, "name"))] = e
		if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
			secret := find("Secret", str(get(ref, "name")))
			if get(secret, "stringData", str(get(ref, "key"))) == nil && get(secret, "data", str(get(ref, "key"))) == nil {
				t.Errorf("env %v: the secret has no key %v", get(e, "name"), get(ref, "key"))
			}
		}
	}
	for name := range cfg.required {
		if _, ok := env[name]; !ok && !injected[name] {
			t.Errorf("the config uses %s, which the container does not set", name)
		}
	}
	if !strings.Contains(text, "client_assertion_file {env.AZURE_FEDERATED_TOKEN_FILE}") {
		t.Error("the config does not use the workload identity's federated token")
	}

	// Several replicas share the Redis tier, at the Redis Service's address.
	if replicas, _ := get(app, "spec", "replicas").(int); replicas > 1 && !cfg.redis {
		t.Errorf("%d replicas without the redis tier", replicas)
	}
	ref := get(env["REDIS_URL"], "valueFrom", "secretKeyRef")
	redisURL := str(get(find("Secret", str(get(ref, "name"))), "stringData", str(get(ref, "key"))))
	svc := find("Service", "redis")
	if want := "redis:" + itoa(get(svc, "spec", "ports", 0, "port")); redisHostPort(t, redisURL) != want {
		t.Errorf("REDIS_URL %s is not the redis Service %s", redisURL, want)
	}
	for _, s := range []string{"redis", "app"} {
		service, deploy := find("Service", s), find("Deployment", s)
		for k, v := range get(service, "spec", "selector").(map[string]any) {
			if get(deploy, "spec", "template", "metadata", "labels", k) != v {
				t.Errorf("Service %s selects %s=%v, which its Deployment's pods lack", s, k, v)
			}
		}
		target := get(service, "spec", "ports", 0, "targetPort")
		found := false
		for _, c := range list(get(deploy, "spec", "template", "spec", "containers")) {
			found = found || named(list(get(c, "ports")), str(target)) != nil
		}
		if !found {
			t.Errorf("Service %s targets port %v, which no container names", s, target)
		}
	}
	adapt(t, text)
}

func TestComposeExample(t *testing.T) {
	img := readImage(t)
	dir := "compose"
	file := docs(t, filepath.Join(dir, "compose.yaml"))[0]
	services, _ := file["services"].(map[string]any)
	ti, app := services["token-injector"], services["app"]
	if ti == nil || app == nil || services["redis"] == nil {
		t.Fatalf("services %v: want app, token-injector and redis", services)
	}
	if _, err := os.Stat(filepath.Join(dir, str(get(ti, "build", "context")), "Dockerfile")); err != nil {
		t.Errorf("the build context has no Dockerfile: %v", err)
	}
	if get(ti, "network_mode") != "service:app" {
		t.Error("the token injector must share the app's network namespace, so the app is a loopback caller")
	}
	if get(ti, "user") != img.user || get(ti, "read_only") != true || get(ti, "tmpfs", 0) != "/tmp" {
		t.Errorf("user %v read_only %v tmpfs %v: want the image's user %s, a read-only root and /tmp on tmpfs",
			get(ti, "user"), get(ti, "read_only"), get(ti, "tmpfs"), img.user)
	}
	cfgPath := configPath(t, list(get(ti, "command")))
	var text string
	for _, v := range list(get(ti, "volumes")) {
		src, dst, _ := strings.Cut(str(v), ":")
		if strings.TrimSuffix(dst, ":ro") == cfgPath {
			text = readFile(t, filepath.Join(dir, src))
		}
	}
	if text == "" {
		t.Fatalf("no volume mounts a file at --config %s", cfgPath)
	}
	cfg := parseCaddyfile(t, text)
	if cfg.port != img.port {
		t.Errorf("config port %s, image EXPOSE %s", cfg.port, img.port)
	}
	if want := "http://localhost:" + cfg.port; get(app, "environment", "TOKEN_INJECTOR_URL") != want {
		t.Errorf("the app does not call the sidecar at %s", want)
	}
	env, _ := get(ti, "environment").(map[string]any)
	for name := range cfg.required {
		if _, ok := env[name]; !ok {
			t.Errorf("the config uses %s, which the service does not set", name)
		}
	}
	if !cfg.redis || redisHostPort(t, str(env["REDIS_URL"])) != "redis:6379" {
		t.Errorf("the token injector does not use the redis service: redis block %v, REDIS_URL %v", cfg.redis, env["REDIS_URL"])
	}
	// .env.example names every variable compose takes from the environment.
	example := readFile(t, filepath.Join(dir, ".env.example"))
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllStringSubmatch(readFile(t, filepath.Join(dir, "compose.yaml")), -1) {
		if !strings.Contains(example, m[1]+"=") {
			t.Errorf(".env.example lacks %s", m[1])
		}
	}
	adapt(t, text)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func itoa(v any) string {
	n, _ := v.(int)
	return strconv.Itoa(n)
}
