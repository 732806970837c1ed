package waitfor

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// run runs "waitfor args..." as the binary does, with the process
// environment plus env.
func run(t *testing.T, env map[string]string, args ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, context.Background(), Applet, env, args...)
}

// after runs f once d has passed, in the background.
func after(d time.Duration, f func()) {
	go func() { time.Sleep(d); f() }()
}

// openPort is a loopback port that accepts connections and closes them at
// once, until the test ends.
func openPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}
