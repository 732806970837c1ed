package testenv

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Serve listens on a free loopback port until the test ends and hands
// every connection to serve, in its own goroutine; connections still open
// at the end are closed. It returns "127.0.0.1:PORT".
func Serve(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// Hold keeps a connection open without a word: a server that accepts and
// never answers.
func Hold(net.Conn) {}

// ClosedAddr is a loopback address nothing listens on.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ListenLater starts listening on addr (from ClosedAddr) after d, until the
// test ends: a dependency that appears while something waits for it. The
// kernel completes the handshakes; nothing is read.
func ListenLater(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	ready := make(chan net.Listener, 1)
	time.AfterFunc(d, func() {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listening on %s: %v", addr, err)
		}
		ready <- ln
	})
	// Waiting for the listener here also keeps t.Errorf above from
	// running after the test has ended.
	t.Cleanup(func() {
		if ln := <-ready; ln != nil {
			ln.Close()
		}
	})
}
