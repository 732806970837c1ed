package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

// Credentials given in every place initbox accepts them never show in its
// output — stdout, stderr at -v, or the termination message — whether the
// command succeeds, fails or is refused as bad usage.
func TestSecretsNeverPrinted(t *testing.T) {
	bin := testenv.Binary(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	// It echoes what it was sent: the Authorization header, the token
	// after its scheme word alone, and the body.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		_, tok, _ := strings.Cut(auth, " ")
		body, _ := io.ReadAll(r.Body)
		http.Error(w, "no: "+auth+" ["+tok+"] "+string(body)+" query "+r.URL.RawQuery, http.StatusForbidden)
	}))
	defer failing.Close()
	host := strings.TrimPrefix(failing.URL, "http://")
	const (
		cookie  = "cookie-S3ss10n"
		jsonPw  = "json-Pa55word"
		jsonTok = "json-T0ken"
	)
	// It answers 200 with a session cookie and a JSON body holding
	// credentials, which waitfor's checks then find wrong.
	leaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session="+cookie)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"auth": {"password": "`+jsonPw+`"}, "token": "`+jsonTok+`"}`)
	}))
	defer leaky.Close()

	const (
		dsnPw   = "dsn-Pa55word"
		kvPw    = "kv pass'word"
		envPw   = "pgpassword-env-S3cret"
		userPw  = "userinfo-S3cret"
		bearer  = "bearer-T0ken-abc"
		filed   = "token-from-file-XYZ"
		kubeTok = "kube-T0ken-123"
		apiKey  = "api-key-Q1w2e3"
		sasSig  = "sas-Sig-value9"
		gKey    = "AIzaSy-google-key"
		amzSig  = "amz-Signature-ff00"
		fileBr  = "file-bearer-T0k"
		mounted = "mounted-secret-V4lue"
		myPw    = "mysql-Pa55-w0rd"
		myEnvPw = "mysql-pwd-env-S3c"
		redisPw = "redis-Pa55-w0rd"
		filePw  = "password-file-Z9z"
		gitTok  = "git-token-Gh0st"
		storePw = "store-password-P12"
		quoted  = `env"quo<te>&S3cret`
		qToken  = "query-T0ken-env"
	)
	// A userinfo password echoed back as the Basic credential it became.
	basic := base64.StdEncoding.EncodeToString([]byte("app:" + userPw))
	secrets := []string{dsnPw, kvPw, envPw, userPw, bearer, filed, kubeTok, apiKey, sasSig, gKey, amzSig, fileBr, mounted,
		myPw, myEnvPw, redisPw, filePw, gitTok, storePw, cookie, jsonPw, jsonTok, quoted, qToken, basic}
	pwFile := filepath.Join(dir, "password")
	os.WriteFile(pwFile, []byte(filePw+"\n"), 0o600)
	gitTokFile := filepath.Join(dir, "git-token")
	os.WriteFile(gitTokFile, []byte("deploy:"+gitTok+"\n"), 0o600)
	storePwFile := filepath.Join(dir, "store-password")
	os.WriteFile(storePwFile, []byte(storePw), 0o600)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(filed+"\n"), 0o600)
	bearerFile := filepath.Join(dir, "bearer")
	os.WriteFile(bearerFile, []byte("Bearer "+fileBr+"\n"), 0o600)
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte(mounted), 0o600)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
current-context: c
clusters: [{name: k, cluster: {server: "https://`+closed+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: `+kubeTok+`}}]
contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]
`), 0o600)

	for _, c := range []struct {
		name string
		args []string
		env  []string
	}{
		{"waitfor postgres URL", []string{"waitfor", "postgres", "postgres://app:" + dsnPw + "@" + closed + "/app", "--timeout", "1s"}, nil},
		{"waitfor postgres key=value", []string{"waitfor", "postgres", "host=127.0.0.1 port=1 user=app password='kv pass\\'word' dbname=app", "--timeout", "1s"}, nil},
		{"waitfor postgres bad DSN", []string{"waitfor", "postgres", "postgres://app:" + dsnPw + "@h:notaport/app"}, nil},
		{"waitfor postgres PGPASSWORD", []string{"waitfor", "postgres", "postgres://app@" + closed + "/app", "--query", "SELECT 1", "--timeout", "1s"}, []string{"PGPASSWORD=" + envPw}},
		{"waitfor http", []string{"waitfor", "http", "http://app:" + userPw + "@" + host + "/health?api_key=" + apiKey, "--header", "Authorization: Bearer " + bearer, "--header", "X-Token: @" + tokenFile, "--timeout", "1s"}, nil},
		{"waitfor k8s", []string{"waitfor", "k8s", "job", "x", "--kubeconfig", kubeconfig, "--timeout", "1s"}, nil},
		{"fetch", []string{"fetch", "http://app:" + userPw + "@" + host + "/f?token=" + apiKey, filepath.Join(dir, "out"), "--header", "Authorization: @" + tokenFile, "--timeout", "2s"}, nil},
		{"register http", []string{"register", "http", "http://app:" + userPw + "@" + host + "/r", "--data", "k=v", "--header", "Authorization: Bearer " + bearer, "--timeout", "2s"}, nil},
		{"register postgres", []string{"register", "postgres", "postgres://app:" + dsnPw + "@" + closed + "/app", "--table", "t", "--key", "k=v", "--timeout", "2s"}, nil},
		{"fetch signed URLs", []string{"fetch", "http://" + host + "/f?sv=2022&sig=" + sasSig + "&key=" + gKey + "&X-Amz-Signature=" + amzSig, filepath.Join(dir, "out2"), "--timeout", "2s"}, nil},
		{"fetch bearer from a file", []string{"fetch", "http://" + host + "/f", filepath.Join(dir, "out3"), "--header", "Authorization: @" + bearerFile, "--timeout", "2s"}, nil},
		{"waitfor http bearer from a file", []string{"waitfor", "http", "http://" + host + "/h", "--header", "Authorization: @" + bearerFile, "--timeout", "1s"}, nil},
		{"register http file value", []string{"register", "http", "http://" + host + "/r", "--data", `k={{ file "` + secretFile + `" }}`, "--timeout", "2s"}, nil},
		{"waitfor mysql URL", []string{"waitfor", "mysql", "mysql://app:" + myPw + "@" + closed + "/app", "--timeout", "1s"}, nil},
		{"waitfor mysql DSN", []string{"waitfor", "mysql", "app:" + myPw + "@tcp(" + closed + ")/app", "--query", "SELECT 1", "--timeout", "1s"}, nil},
		{"waitfor mysql bad DSN", []string{"waitfor", "mysql", "app:" + myPw + "@tcp(" + closed + ")/app?timeout=banana"}, nil},
		{"waitfor mysql MYSQL_PWD", []string{"waitfor", "mysql", "mysql://app@" + closed, "--timeout", "1s"}, []string{"MYSQL_PWD=" + myEnvPw}},
		{"waitfor mysql password file", []string{"waitfor", "mysql", "mysql://app@" + closed, "--password-file", pwFile, "--timeout", "1s"}, nil},
		{"waitfor redis URL", []string{"waitfor", "redis", "redis://user:" + redisPw + "@" + closed + "/1", "--timeout", "1s"}, nil},
		{"waitfor redis bad URL", []string{"waitfor", "redis", "redis://:" + redisPw + "@" + closed + "/x"}, nil},
		{"waitfor redis password file", []string{"waitfor", "redis", "redis://" + host, "--password-file", pwFile, "--timeout", "1s"}, nil},
		{"fetch git token", []string{"fetch", "git::http://" + host + "/repo.git", filepath.Join(dir, "git"), "--git-token-file", gitTokFile, "--timeout", "2s"}, nil},
		{"cert store password", []string{"cert", "--truststore", filepath.Join(dir, "t.p12"), "--trust", "/nonexistent", "--store-password-file", storePwFile}, nil},
		{"run", []string{"run", "waitfor postgres postgres://app:" + dsnPw + "@" + closed + "/app --timeout 1s"}, nil},
		{"bad usage", []string{"waitfor", "http", "http://app:" + userPw + "@" + host + "/", "--header", "Authorization Bearer " + bearer}, nil},
		{"register http env in JSON", []string{"register", "http", "http://" + host + "/r", "--json", `{"p": {{ .Env.REG_PASSWORD | toJson }}}`, "--timeout", "2s"}, []string{"REG_PASSWORD=" + quoted}},
		{"register http userinfo as Basic", []string{"register", "http", "http://app:" + userPw + "@" + host + "/r", "--data", "k=v", "--timeout", "2s"}, nil},
		{"waitfor http userinfo as Basic", []string{"waitfor", "http", "http://app:" + userPw + "@" + host + "/h", "--timeout", "1s"}, nil},
		{"register http env in query", []string{"register", "http", "http://" + host + "/r?token={{ .Env.T }}", "--data", "k=v", "--timeout", "2s"}, []string{"T=" + qToken}},
		{"waitfor http cookie", []string{"waitfor", "http", leaky.URL + "/h", "--expect-header", "Set-Cookie: other", "--timeout", "1s"}, nil},
		{"waitfor http JSON secrets", []string{"waitfor", "http", leaky.URL + "/h", "--json", ".auth.password=x", "--json", ".token", "--timeout", "1s"}, nil},
		{"waitfor http JSON token", []string{"waitfor", "http", leaky.URL + "/h", "--json", "token=x", "--timeout", "1s"}, nil},
	} {
		for _, format := range []string{"text", "json"} {
			t.Run(c.name+" "+format, func(t *testing.T) {
				tl := filepath.Join(t.TempDir(), "termination-log")
				cmd := exec.Command(bin, append(c.args, "-v", "--log-format", format, "--termination-log", tl)...)
				cmd.Env = append(append(os.Environ(), "KUBERNETES_SERVICE_HOST="), c.env...)
				out, _ := cmd.CombinedOutput()
				msg, _ := os.ReadFile(tl)
				if len(out) == 0 || len(msg) == 0 {
					t.Fatalf("no output (%q) or termination message (%q) to check", out, msg)
				}
				for _, s := range secrets {
					for _, form := range []string{s, strconv.Quote(s)[1 : len(strconv.Quote(s))-1], jsonInner(s)} {
						if strings.Contains(string(out), form) || strings.Contains(string(msg), form) {
							t.Errorf("%q shows (as %q):\n%s\ntermination message: %s", s, form, out, msg)
						}
					}
				}
			})
		}
	}
}

// jsonInner is s as a JSON string holds it, without the quotes.
func jsonInner(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// A message names a URL with a port and a later "@" as it is: only
// userinfo is userinfo.
func TestMessagesKeepURLs(t *testing.T) {
	bin := testenv.Binary(t)
	src := "git::http://127.0.0.1:1/repo.git?ref=" + strings.Repeat("ab", 20)
	cmd := exec.Command(bin, "fetch", src+"@", filepath.Join(t.TempDir(), "d"), "--timeout", "1s", "--termination-log", "")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "http://127.0.0.1:1/repo.git") || strings.Contains(string(out), "127.0.0.1:"+"REDACTED") {
		t.Fatalf("the URL was mangled:\n%s", out)
	}
}
