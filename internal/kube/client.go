package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/initbox/initbox/internal/oserr"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/transport"
)

// Client talks to one API server.
type Client struct {
	cfg     *Config
	http    *http.Client
	secrets *redact.Set
}

// New makes a client for cfg; tokens it reads are added to secrets.
func New(cfg *Config, secrets *redact.Set) *Client {
	secrets.Add(cfg.Token)
	return &Client{cfg: cfg, secrets: secrets, http: &http.Client{Transport: transport.New(transport.Options{TLS: cfg.TLS, Timeout: 10 * time.Second})}}
}

// Namespace is the configuration's default namespace.
func (c *Client) Namespace() string { return c.cfg.Namespace }

// StatusError is an API server's answer other than success.
type StatusError struct {
	Code    int
	Reason  string // the Status object's reason: Forbidden, NotFound, Expired…
	Message string
	Token   string // the token the request carried, to tell a rotation
}

func (e *StatusError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%d %s: %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("%d %s", e.Code, http.StatusText(e.Code))
}

// Gone reports a resourceVersion too old to watch from (410): re-list.
func Gone(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Code == http.StatusGone || se.Reason == "Expired" || se.Reason == "Gone")
}

// TokenChanged reports whether the token has changed since err's request
// was made: a 401 then deserves another try.
func (c *Client) TokenChanged(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) || c.cfg.TokenFile == "" {
		return false
	}
	tok, terr := c.token()
	return terr == nil && tok != se.Token
}

func (c *Client) token() (string, error) {
	if c.cfg.TokenFile == "" {
		return c.cfg.Token, nil
	}
	b, err := os.ReadFile(c.cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("reading the token: %w", oserr.Reason(err))
	}
	tok := strings.TrimSpace(string(b))
	c.secrets.Add(tok)
	return tok, nil
}

// do sends a GET for path with query and returns the response when it is
// a success; otherwise a *StatusError or a network error.
func (c *Client) do(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	u := c.cfg.Server + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "initbox-waitfor")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	se := &StatusError{Code: resp.StatusCode, Token: tok}
	var st struct{ Reason, Message string }
	if json.Unmarshal(body, &st) == nil {
		se.Reason, se.Message = st.Reason, st.Message
	}
	if se.Reason == "" {
		se.Reason = http.StatusText(resp.StatusCode)
	}
	return nil, se
}

// Ready reports whether the API server says it is ready (/readyz). Right
// after a start, its authorizer may refuse what it will allow a moment
// later: a 403 from a server not ready yet is not the final word.
func (c *Client) Ready(ctx context.Context) bool {
	resp, err := c.do(ctx, "/readyz", nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// Get decodes the JSON answer to a GET of path into v.
func (c *Client) Get(ctx context.Context, path string, query url.Values, v any) error {
	resp, err := c.do(ctx, path, query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Event is one watch event.
type Event struct {
	Type   string // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
	Object map[string]any
}

// Watcher reads a watch's events as they come.
type Watcher struct {
	body io.ReadCloser
	dec  *json.Decoder
}

// Watch starts a watch of path from resourceVersion rv.
func (c *Client) Watch(ctx context.Context, path string, query url.Values, rv string) (*Watcher, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("watch", "1")
	q.Set("resourceVersion", rv)
	q.Set("allowWatchBookmarks", "true")
	q.Set("timeoutSeconds", "300")
	resp, err := c.do(ctx, path, q)
	if err != nil {
		return nil, err
	}
	return &Watcher{body: resp.Body, dec: json.NewDecoder(bufio.NewReader(resp.Body))}, nil
}

// Next returns the next event; io.EOF when the server ended the watch.
// An ERROR event is returned as its *StatusError.
func (w *Watcher) Next() (Event, error) {
	var ev Event
	if err := w.dec.Decode(&ev); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return ev, err
	}
	if ev.Type == "ERROR" {
		se := &StatusError{Code: http.StatusInternalServerError}
		if c, ok := ev.Object["code"].(float64); ok {
			se.Code = int(c)
		}
		se.Reason, _ = ev.Object["reason"].(string)
		se.Message, _ = ev.Object["message"].(string)
		return ev, se
	}
	return ev, nil
}

// Close ends the watch.
func (w *Watcher) Close() error { return w.body.Close() }
