package tmpl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"text/template"

	"github.com/initbox/initbox/internal/testenv"
)

func TestParseMapReadsWhatTheKubeletWrites(t *testing.T) {
	got, err := ParseMap(testenv.KubeletMap(testenv.HardLabels))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, testenv.HardLabels) {
		t.Fatalf("got %q\nwant %q", got, testenv.HardLabels)
	}
	for _, bad := range []string{"novalue", `k=unquoted`, `=""`, "k=\"open"} {
		if _, err := ParseMap("a=\"1\"\n" + bad); err == nil || !strings.HasPrefix(err.Error(), "2: ") {
			t.Errorf("%q: %v, want an error on line 2", bad, err)
		}
	}
}

func TestLoadPodFromEnvAndVolume(t *testing.T) {
	env := map[string]string{
		"POD_NAME": "from-env", "POD_NAMESPACE": "shop", "POD_IPS": "10.1.2.3, fd00::3",
		"NODE_NAME": "node-7", "HOST_IP": "192.168.0.7", "POD_SERVICE_ACCOUNT": "web",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	dir := testenv.Podinfo(t, map[string]string{
		"name":        "from-volume",
		"labels":      testenv.KubeletMap(testenv.HardLabels),
		"annotations": testenv.KubeletMap(map[string]string{"note": "x"}),
		"limits/cpu":  "2",
	})
	pod, err := LoadPod(lookup, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Name": "from-volume", "Namespace": "shop", "IP": "10.1.2.3", "IPs": []string{"10.1.2.3", "fd00::3"},
		"NodeName": "node-7", "HostIP": "192.168.0.7", "HostIPs": []string{"192.168.0.7"}, "ServiceAccount": "web",
		"Labels": anyMap(testenv.HardLabels), "Annotations": map[string]any{"note": "x"},
		"Files": map[string]any{
			"name": "from-volume", "labels": testenv.KubeletMap(testenv.HardLabels),
			"annotations": testenv.KubeletMap(map[string]string{"note": "x"}), "limits/cpu": "2",
		},
	}
	if !reflect.DeepEqual(pod, want) {
		t.Fatalf("got  %#v\nwant %#v", pod, want)
	}

	// A prefix renames every variable.
	env = map[string]string{"MY_POD_IP": "10.9.9.9"}
	pod, err = LoadPod(lookup, "MY_", "")
	if err != nil || pod["IP"] != "10.9.9.9" || !reflect.DeepEqual(pod["IPs"], []string{"10.9.9.9"}) {
		t.Fatalf("%v %#v", err, pod)
	}

	// A broken labels file names its path and line.
	bad := testenv.Podinfo(t, map[string]string{"labels": "a=\"1\"\nb=2"})
	if _, err := LoadPod(lookup, "", bad); err == nil || !strings.Contains(err.Error(), "labels:2: the value of b is not a quoted string") {
		t.Fatalf("got %v", err)
	}
	if _, err := LoadPod(lookup, "", filepath.Join(bad, "nope")); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadValuesMergesInOrder(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	over := filepath.Join(dir, "over.json")
	os.WriteFile(base, []byte("db:\n  host: db\n  port: 5432\nreplicas: 1\nbig: 12345678901234567890\n"), 0o644)
	os.WriteFile(over, []byte(`{"db": {"port": 6432}, "tags": ["a", "b"]}`), 0o644)
	v, err := LoadValues([]string{base, over}, []string{"db.user=app", "replicas=3", "new.deep.key=x=y"}, "set")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(v)
	want := "map[big:12345678901234567890 db:map[host:db port:6432 user:app] new:map[deep:map[key:x=y]] replicas:3 tags:[a b]]"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}

	list := filepath.Join(dir, "list.yaml")
	os.WriteFile(list, []byte("- a\n- b\n"), 0o644)
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("a: [1, 2\n"), 0o644)
	for _, c := range []struct {
		files, sets []string
		want        string
	}{
		{[]string{list}, nil, "the top level must be a map of keys, not a list"},
		{[]string{broken}, nil, "--values " + broken + ": yaml: line 1"},
		{[]string{filepath.Join(dir, "missing.yaml")}, nil, "missing.yaml: no such file or directory"},
		{nil, []string{"novalue"}, `invalid value "novalue" for --set: want KEY=VALUE`},
		{nil, []string{"a..b=1"}, `invalid key "a..b" for --set: an empty part`},
	} {
		if _, err := LoadValues(c.files, c.sets, "set"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: got %v, want %q", c.files, c.sets, err, c.want)
		}
	}
}

func TestStrictExecution(t *testing.T) {
	o := &Options{MissingKey: "error"}
	data := Data{"Env": map[string]any{"A": "1"}, "Pod": map[string]any{"Labels": map[string]any{}}, "Values": map[string]any{}}
	for _, c := range []struct{ src, want string }{
		{"{{ .Env.B }}", `t.conf:1:7: executing "t.conf" at <.Env.B>: map has no entry for key "B"`},
		{"\n\n{{ .Values.db.host }}", `t.conf:3:10: executing "t.conf" at <.Values.db.host>: map has no entry for key "db"`},
		{"{{ .Pod.IP }}", `map has no entry for key "IP" (set POD_IP from the downward API: fieldRef status.podIP)`},
		{`{{ required "the database host is required" "" }}`, "the database host is required"},
		{`{{ file "/nonexistent/secret" }}`, "file /nonexistent/secret: no such file or directory"},
		{`{{ fromJson "{" }}`, "fromJson: unexpected EOF"},
	} {
		tpl, err := o.Parse("t.conf", c.src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := execute(o, tpl, data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.src, err, c.want)
		}
	}
	if _, err := o.Parse("t.conf", "a\n{{ if }}"); err == nil || err.Error() != "t.conf:2: missing value for if" {
		t.Errorf("syntax error: %v", err)
	}
	// With zero, a missing key renders as nothing, never "<no value>".
	z := &Options{MissingKey: "zero"}
	tpl, _ := z.Parse("t.conf", "[{{ .Values.nope }}][{{ .Env.NOPE }}]")
	if out, err := execute(z, tpl, data); err != nil || string(out) != "[][]" {
		t.Errorf("zero: %q %v", out, err)
	}
	// Only a missing key becomes empty: the same text in data (a label's
	// value) or in the template's literal text is kept as written, in
	// every kind of block and in defined templates.
	pod := Data{"Pod": map[string]any{"Labels": map[string]any{"note": "<no value>"}}, "Values": map[string]any{"n": nil, "list": []any{"a"}}}
	for src, want := range map[string]string{
		"literal <no value> [{{ .Values.nope }}]":                                             "literal <no value> []",
		"{{ .Pod.Labels.note }}|{{ .Pod.Labels.nope }}":                                       "<no value>|",
		"{{ if true }}{{ .Values.nope }}<no value>{{ else }}x{{ end }}":                       "<no value>",
		"{{ range .Values.list }}{{ . }}{{ $.Values.nope }}{{ end }}":                         "a",
		"{{ with .Pod.Labels }}{{ .note }}{{ .nope }}{{ end }}":                               "<no value>",
		`{{ define "d" }}[{{ .nope }}]{{ end }}{{ template "d" .Pod.Labels }}`:                "[]",
		"{{ .Values.n }}|{{ .Values.nope | default \"d\" }}|{{ $x := .Values.nope }}{{ $x }}": "|d|",
	} {
		tpl, err := z.Parse("t.conf", src)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := execute(z, tpl, pod); err != nil || string(out) != want {
			t.Errorf("zero: %s → %q %v, want %q", src, out, err, want)
		}
	}
}

func TestFunctions(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "password")
	os.WriteFile(secret, []byte("s3cr3t\n"), 0o600)
	o := &Options{MissingKey: "error"}
	data := Data{"Env": map[string]any{}, "Pod": map[string]any{}, "Values": map[string]any{
		"port": mustJSONNumber(t), "list": []any{"b", "a"}, "m": map[string]any{"z": 1, "a": "x"},
	}}
	for src, want := range map[string]string{
		`{{ .Values.port }}`:                                                  "8080",
		`{{ .Values.m | toYaml }}`:                                            "a: x\nz: 1",
		`{{ .Values.m | toJson }}`:                                            `{"a":"x","z":1}`,
		`{{ (fromYaml "a: [1, 2]").a | toJson }}`:                             `[1,2]`,
		`{{ (fromJson "{\"n\": 10000000000000000001}").n }}`:                  "10000000000000000001",
		`{{ file "` + secret + `" | trim }}`:                                  "s3cr3t",
		`{{ dig "missing" "dflt" .Values }}`:                                  "dflt",
		`{{ .Values.list | sortAlpha | join "," | upper }}`:                   "A,B",
		`{{ "x" | b64enc }} {{ "db" | quote }} {{ sha256sum "a" | trunc 8 }}`: `eA== "db" ca978112`,
	} {
		tpl, err := o.Parse("t", src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		out, err := execute(o, tpl, data)
		if err != nil || string(out) != want {
			t.Errorf("%s: got %q, %v; want %q", src, out, err, want)
		}
	}
	// Hermetic: nothing that differs between runs or reads the world.
	for _, name := range []string{"env", "expandenv", "now", "randAlpha", "uuidv4", "getHostByName"} {
		if _, ok := funcs()[name]; ok {
			t.Errorf("%s is in the function set", name)
		}
	}
}

func mustJSONNumber(t *testing.T) any {
	v, err := fromJSON("8080")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func anyMap(m map[string]string) map[string]any {
	am := make(map[string]any, len(m))
	for k, v := range m {
		am[k] = v
	}
	return am
}

func execute(o *Options, t *template.Template, data Data) ([]byte, error) {
	var b bytes.Buffer
	err := o.Execute(t, data, &b)
	return b.Bytes(), err
}
