package waitfor

import (
	"net/url"
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/redact"
)

// Both target forms: never a panic, and every target found has a kind and
// a text.
func FuzzSplitTargets(f *testing.F) {
	for _, s := range []string{"dns\x00myservice", "tcp://db:5432\x00dns:x", "k8s\x00job\x00migrate", "k8s:job/x", "postgres://u:p@h/db", "http\x00", "\x00", "file:///x", "k8s\x00pod\x00a/b\x00c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		specs, err := splitTargets(args)
		if err != nil {
			return
		}
		if len(specs) == 0 {
			t.Fatalf("%q: no targets and no error", args)
		}
		for _, sp := range specs {
			if sp.kind == nil || strings.TrimSpace(sp.target) == "" {
				t.Fatalf("%q: target %+v", args, sp)
			}
		}
	})
}

// No password survives into what waitfor prints of a DSN — the target's
// label or the error about it — whatever the DSN's form and the password.
func FuzzDSNPassword(f *testing.F) {
	for i, pw := range []string{"s3cret", "p@ss/w:rd", "it's", `back\slash`, "spa ce", "x=y&z", "%41%42", "ünï"} {
		f.Add(pw, uint8(i))
	}
	f.Fuzz(func(t *testing.T, pw string, form uint8) {
		if len(strings.TrimSpace(pw)) < redact.MinLen || strings.ContainsAny(pw, "\x00") || strings.Contains(redact.Mask, pw) {
			return
		}
		kv := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)
		forms := []func(string, string) string{
			func(p, _ string) string {
				return (&url.URL{Scheme: "postgres", User: url.UserPassword("app", p), Host: "db:5432", Path: "/app"}).String()
			},
			func(p, _ string) string {
				return "postgres://app@db:5432/app?sslmode=disable&password=" + url.QueryEscape(p)
			},
			func(_, q string) string { return "host=db user=app password='" + q + "' dbname=app" },
			func(p, _ string) string { return "host=db user=app password=" + p + " dbname=app" },
			func(p, _ string) string { return "postgresql://app:" + p + "@db/app" },
		}
		mk := forms[int(form)%len(forms)]
		dsn := mk(pw, kv)
		// A password that is also part of the DSN's other text (the user,
		// the host) cannot be told from it.
		if plain := mk("", ""); strings.Contains(plain, pw) || strings.Contains(plain, url.QueryEscape(pw)) {
			return
		}
		env := &cli.Env{Secrets: &redact.Set{}, LookupEnv: func(string) (string, bool) { return "", false }}
		o := &options{env: env, resolvConf: "/nonexistent", hostsFile: ""}
		var printed string
		p, err := (&postgresOptions{}).probe(o, dsn)
		if err != nil {
			printed = env.Secrets.String(err.Error())
		} else {
			printed = env.Secrets.String(p.(*postgresProbe).label)
		}
		for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw), kv} {
			if len(form) >= redact.MinLen && strings.Contains(printed, form) {
				t.Fatalf("DSN %q printed as %q: the password %q shows", dsn, printed, form)
			}
		}
	})
}
