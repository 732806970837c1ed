package waitfor

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// noticedWithOracle is the "started while waiting" check of the
// differential suites: waitfor ARGS waits while start brings the server up
// a second in; oracle is the real client, polled every 20 ms until it
// first says ready; waitfor must be ready within a second of that (it
// probes every 200 ms; the margin is for a loaded machine).
func noticedWithOracle(t *testing.T, name string, start func(), oracle func() bool, args ...string) {
	t.Helper()
	done := make(chan time.Time, 1)
	go func() {
		if r := run(t, nil, append(args, "--timeout", "60s")...); r.Code == 0 {
			done <- time.Now()
		}
		close(done)
	}()
	time.Sleep(time.Second)
	start()
	var first time.Time
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if oracle() {
			first = time.Now()
			break
		}
	}
	ready, ok := <-done
	if !ok || first.IsZero() {
		t.Fatalf("the wait (%v) or %s (%v) never saw the server", ok, name, !first.IsZero())
	}
	t.Logf("waitfor was ready %s after %s first said so", ready.Sub(first).Round(time.Millisecond), name)
	if ready.Sub(first) > time.Second {
		t.Fatalf("waitfor was ready %s after %s", ready.Sub(first), name)
	}
}

// tcp --send/--expect against a real memcached (its text protocol's
// "version"): not yet while nothing listens, ready soon after memcached
// starts; a reply without the text is "not yet", quoted in the reason.
func TestTCPLineProtocolMemcached(t *testing.T) {
	testenv.RealServer(t, "a Debian server")
	mc, err := exec.LookPath("memcached")
	if err != nil {
		testenv.Skip(t, "Debian's memcached is needed: "+err.Error())
	}
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	after(time.Second, func() { startServer(t, mc, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-u", "nobody") })
	r := run(t, nil, "tcp", addr, "--send", `version\r\n`, "--expect", "VERSION 1.", "--timeout", "30s", "-v")
	r.MustExit(t, 0, "msg=ready", "connection refused")
	if r.Elapsed < time.Second {
		t.Fatalf("ready after %s, before memcached started", r.Elapsed)
	}
	// A command memcached answers with ERROR (and keeps the connection
	// open): the attempt ends at its deadline, the reason quotes the reply.
	rr := run(t, nil, "tcp", addr, "--send", `nonsense\r\n`, "--expect", "VERSION", "--timeout", "1s", "--attempt-timeout", "300ms")
	rr.MustExit(t, 1, `the reply so far is without "VERSION": "ERROR\\r\\n"`) // logfmt doubles the backslashes
	// quit: memcached closes at once, with nothing said.
	run(t, nil, "tcp", addr, "--send", `quit\r\n`, "--expect", "VERSION", "--timeout", "1s").
		MustExit(t, 1, "the reply ended with nothing in it")
}

func TestTCPLineBadUsage(t *testing.T) {
	for args, why := range map[string][]string{
		"--send needs --expect":     {"tcp", "127.0.0.1:1", "--send", "x"},
		`unknown escape \q`:         {"tcp", "127.0.0.1:1", "--send", `\q`, "--expect", "x"},
		`\x wants two hex digits`:   {"tcp", "127.0.0.1:1", "--expect", `\x4`},
		`\xzz: want two hex digits`: {"tcp", "127.0.0.1:1", "--expect", `\xzz`},
		`a lone \ at the end`:       {"tcp", "127.0.0.1:1", "--expect", `abc\`},
	} {
		run(t, nil, why...).MustExit(t, 2, args)
	}
}

// escape is unescape's inverse, for the fuzzer.
func escape(b []byte) string {
	var s []byte
	for _, c := range b {
		switch {
		case c == '\\':
			s = append(s, `\\`...)
		case c == '\r':
			s = append(s, `\r`...)
		case c < 0x20 || c >= 0x7f:
			s = append(s, fmt.Sprintf(`\x%02x`, c)...)
		default:
			s = append(s, c)
		}
	}
	return string(s)
}

// unescape never panics, and reads back what escape wrote.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`ruok`, `version\r\n`, `\x00\xff\\`, `\`, `\x`, `\x4`, `a\q`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := unescape(s)
		if err == nil && len(b) == 0 {
			t.Fatalf("%q: empty without an error", s)
		}
		raw := []byte(s)
		if len(raw) == 0 {
			return
		}
		back, err := unescape(escape(raw))
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("unescape(escape(%q)) = %q, %v", raw, back, err)
		}
	})
}
