// Package tmpl is what render and register share: the data a template sees
// (.Env, .Pod from the downward API, .Values), the functions (sprig's
// hermetic set plus Helm's required, toYaml, fromYaml, toJson, fromJson and
// a file reader) and strict execution, where a missing key is an error that
// names the key, the template and the line.
package tmpl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/redact"
)

// Options are the flags every templating applet takes.
type Options struct {
	setFlag      string
	Values       []string
	Sets         []string
	Podinfo      string
	PodEnvPrefix string
	MissingKey   string
	// Secrets, when set, receives every value the template function file
	// reads: a mounted Secret's key is a credential wherever it is echoed
	// (a server's error quoting the request, a log line).
	Secrets *redact.Set
}

// Flags registers the options on fs; setFlag names the flag that sets
// one value (render's --set; register's --value, as its --set sets a
// column).
func (o *Options) Flags(fs *cli.FlagSet, setFlag string) {
	o.setFlag = setFlag
	fs.Strings(&o.Values, "values", "read .Values from `FILE` (YAML or JSON; repeatable, a later file wins)")
	fs.Strings(&o.Sets, setFlag, "set a value: `KEY=VALUE`, KEY dotted (a.b.c), VALUE a string; beats --values")
	fs.String(&o.Podinfo, "podinfo", "", "a downwardAPI volume's `DIR` (labels, annotations, name, namespace, uid, …)")
	fs.String(&o.PodEnvPrefix, "pod-env-prefix", "", "read .Pod from PREFIXPOD_NAME, PREFIXPOD_IP, … (`PREFIX`)")
	fs.String(&o.MissingKey, "missing-key", "error", "a missing map key is an `error` or renders as the zero value (zero)")
}

// Check validates what can be checked before any data is read.
func (o *Options) Check() error {
	if o.MissingKey != "error" && o.MissingKey != "zero" {
		return fmt.Errorf("invalid value %q for --missing-key: want error or zero", o.MissingKey)
	}
	return nil
}

// Data is what a template is executed with.
type Data map[string]any

// Load reads the data: the process environment, the downward API and the
// values. Its errors are bad input.
func (o *Options) Load(lookupEnv func(string) (string, bool)) (Data, error) {
	pod, err := LoadPod(lookupEnv, o.PodEnvPrefix, o.Podinfo)
	if err != nil {
		return nil, err
	}
	values, err := LoadValues(o.Values, o.Sets, o.setFlag)
	if err != nil {
		return nil, err
	}
	env := environ()
	if o.Secrets != nil {
		// A variable named for a credential (DB_PASSWORD, API_TOKEN) is a
		// secret wherever a template puts it: a server may echo it back.
		for k, v := range env {
			if redact.IsSecretHeader(k) {
				o.Secrets.Add(v.(string))
			}
		}
	}
	return Data{"Env": env, "Pod": pod, "Values": values}, nil
}

// environ is .Env. Its maps, like .Pod's, hold values of type any, which
// sprig's map functions (get, hasKey, dig) require.
func environ() map[string]any {
	env := make(map[string]any)
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	return env
}

// Parse parses text as the template called name (a file's path, which
// every error then names).
func (o *Options) Parse(name, text string) (*template.Template, error) {
	t := template.New(name).Option("missingkey=" + o.MissingKey).Funcs(funcs())
	if o.Secrets != nil {
		t.Funcs(template.FuncMap{"file": func(path string) (string, error) {
			v, err := readFile(path)
			o.Secrets.Add(v)
			return v, err
		}})
	}
	t, err := t.Parse(text)
	if err != nil {
		return nil, clean(err)
	}
	if o.MissingKey == "zero" {
		zeroMissing(t)
	}
	return t, nil
}

// zeroMissing makes every action that prints end in initboxZero, which
// turns a missing value (nil) into "". text/template prints a missing key
// of an untyped map as "<no value>"; rewriting the parsed actions, rather
// than deleting that text from the output, leaves the same text in data or
// in the template's literal text as written.
func zeroMissing(t *template.Template) {
	probe := template.Must(template.New("").Funcs(template.FuncMap{zeroFunc: zero}).Parse("{{ . | " + zeroFunc + " }}"))
	cmd := probe.Tree.Root.Nodes[0].(*parse.ActionNode).Pipe.Cmds[1]
	for _, tt := range t.Templates() {
		tt.Funcs(template.FuncMap{zeroFunc: zero})
		if tt.Tree != nil {
			appendCmd(tt.Tree.Root, cmd)
		}
	}
}

const zeroFunc = "initboxZero"

func zero(v any) any {
	if v == nil {
		return ""
	}
	return v
}

func appendCmd(n parse.Node, cmd *parse.CommandNode) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			appendCmd(c, cmd)
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) == 0 {
			n.Pipe.Cmds = append(n.Pipe.Cmds, cmd)
		}
	case *parse.IfNode:
		appendCmd(n.List, cmd)
		appendCmd(n.ElseList, cmd)
	case *parse.RangeNode:
		appendCmd(n.List, cmd)
		appendCmd(n.ElseList, cmd)
	case *parse.WithNode:
		appendCmd(n.List, cmd)
		appendCmd(n.ElseList, cmd)
	}
}

// Execute runs t over data, writing to w. With --missing-key zero, a
// missing value prints as nothing (Parse arranged it), as in Helm: no app
// should start with "<no value>" in its config.
func (o *Options) Execute(t *template.Template, data Data, w io.Writer) error {
	if err := t.Execute(w, data); err != nil {
		return clean(err)
	}
	return nil
}

// clean drops text/template's "template: " prefix (the file:line that
// follows says it all) and, for a missing .Pod field, names the variable
// that feeds it.
func clean(err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	const missing = `map has no entry for key "`
	if i := strings.Index(msg, missing); i >= 0 && strings.Contains(msg, "at <.Pod.") {
		key := strings.TrimSuffix(msg[i+len(missing):], `"`)
		for _, f := range PodEnv {
			if f.Field == key {
				msg += fmt.Sprintf(" (set %s from the downward API: fieldRef %s)", f.Env, f.FieldRef)
			}
		}
	}
	return errors.New(msg)
}

// funcs is built on first use: sprig's map has some 200 entries, and most
// runs of the binary render nothing.
var funcs = sync.OnceValue(func() template.FuncMap {
	m := sprig.HermeticTxtFuncMap()
	// Every function must be a function of its arguments, or an unchanged
	// input renders a changed file and restarts whatever watches it. sprig's
	// "hermetic" map still has these: random (randInt, shuffle), salted
	// (bcrypt, htpasswd, encryptAES's IV), new keys and certificates (the
	// gen* family, and buildCustomCert, which only feeds it; the cert
	// applet makes certificates idempotently) and the clock (ago).
	// TestEveryFunctionIsDeterministic calls the whole map to keep it so.
	for _, name := range []string{"randInt", "shuffle", "bcrypt", "htpasswd", "encryptAES", "ago",
		"genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey",
		"genSignedCert", "genSignedCertWithKey", "buildCustomCert"} {
		delete(m, name)
	}
	// keys and values walk a Go map, in random order: sorted here (values
	// by their keys), so the same dict renders the same way every time.
	m["keys"] = sortedKeys
	m["values"] = sortedValues
	m["required"] = required
	m["toYaml"] = toYaml
	m["fromYaml"] = fromYaml
	m["toJson"] = toJSON
	m["fromJson"] = fromJSON
	m["file"] = readFile
	return m
})

func sortedKeys(dicts ...map[string]any) []string {
	var ks []string
	for _, d := range dicts {
		for k := range d {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

func sortedValues(dict map[string]any) []any {
	ks := sortedKeys(dict)
	vs := make([]any, len(ks))
	for i, k := range ks {
		vs[i] = dict[k]
	}
	return vs
}

// required fails the rendering with msg when v is missing or empty.
func required(msg string, v any) (any, error) {
	if v == nil {
		return nil, errors.New(msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return nil, errors.New(msg)
	}
	return v, nil
}

// toYaml is Helm's: sorted keys, no trailing newline; unlike Helm's, an
// error fails the rendering instead of printing nothing.
func toYaml(v any) (string, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

func fromYaml(s string) (any, error) {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v, useNumber); err != nil {
		return nil, fmt.Errorf("fromYaml: %w", err)
	}
	return v, nil
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func fromJSON(s string) (any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("fromJson: %w", err)
	}
	if d.More() {
		return nil, errors.New("fromJson: more than one JSON value")
	}
	return v, nil
}

// useNumber keeps numbers as written: 8080 stays 8080, never 8.08e+03.
func useNumber(d *json.Decoder) *json.Decoder { d.UseNumber(); return d }

// readFile is the template function file: a file's content, such as a key
// of a mounted Secret, exactly as stored.
func readFile(path string) (string, error) {
	var sb strings.Builder
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		if fi, serr := f.Stat(); serr == nil && fi.Mode().IsRegular() {
			sb.Grow(int(fi.Size()) + 1)
		}
		// Straight into the string: one copy of a large file, not two.
		_, err = io.Copy(&sb, f)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("file %s: %w", path, err)
	}
	return sb.String(), nil
}
