package waitfor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http2/hpack"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/retry"
)

// The gRPC probe is one unary call, grpc.health.v1.Health/Check, over an
// HTTP/2 connection of its own: the framing a single request needs
// (RFC 9113: the preface, SETTINGS and their ACK, HEADERS with
// CONTINUATION, DATA, PING, RST_STREAM, GOAWAY) is written here, with
// x/net's hpack for the header blocks, and the two one-field protobuf
// messages are encoded by hand. Measured (BENCHMARKS.md, "what each change
// cost"): this file and hpack add 65 KB to the binary (28 KB compressed);
// golang.org/x/net/http2's client would add 360 KB more (115 KB
// compressed), net/http's own HTTP/2 (dropping build.flags'
// nethttpomithttp2) 128 KB compressed, google.golang.org/grpc 3.68 MB (1.29 MB
// compressed) —
// each past what the 6,000,000-byte layer budget had left. The frame
// reader and the message
// decoder are bounded and fuzzed.

// The grpc kind, registered in the table (register).
var _ = register(&kind{
	name: "grpc", rank: 60, noun: "gRPC",
	usage: "grpc HOST:PORT", urlForm: "grpc://HOST:PORT",
	help: `grpc.health.v1.Health/Check answers SERVING (--service NAME for one
		service); NOT_SERVING, SERVICE_UNKNOWN, NOT_FOUND are "not yet". Plaintext (h2c)
		unless --tls or grpcs://.`,
	schemes:    []string{"grpc", "grpcs"},
	keepScheme: true, // grpcs:// means TLS
	tls:        fullTLS,
	options:    func() kindOptions { return &grpcOptions{} },
})

type grpcOptions struct {
	service string
	tls     bool
}

func (k *grpcOptions) flags(fs *cli.FlagSet) {
	fs.String(&k.service, "service", "", "ask the health of `SERVICE` (default: the server as a whole)")
	fs.Bool(&k.tls, "tls", "connect over TLS")
}

type grpcProbe struct {
	addr      string
	authority string
	service   string
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	tls       *tls.Config // nil: h2c (plaintext, prior knowledge)
}

func (k *grpcOptions) probe(o *options, target string) (probe, error) {
	useTLS := k.tls
	if scheme, rest, ok := strings.Cut(target, "://"); ok {
		switch strings.ToLower(scheme) {
		case "grpcs":
			useTLS = true
		case "grpc":
		default:
			return nil, fmt.Errorf("want grpc://HOST:PORT or grpcs://HOST:PORT for TLS")
		}
		target = strings.TrimSuffix(rest, "/")
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" {
		return nil, errors.New("want HOST:PORT")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return nil, fmt.Errorf("invalid port %q", port)
	}
	p := &grpcProbe{addr: target, authority: target, service: k.service}
	if useTLS {
		if p.tls, err = o.tlsOpts.Config(host); err != nil {
			return nil, err
		}
		p.tls.NextProtos = []string{"h2"}
	}
	if o.tlsOpts.ServerName != "" {
		// The name the server is asked for, in the handshake and in
		// :authority alike, as grpc-health-probe -tls-server-name sends it
		// (a server that checks its authority refuses another).
		p.authority = o.tlsOpts.ServerName
	}
	if p.dial, err = o.dialer(host); err != nil {
		return nil, err
	}
	return p, nil
}

// The health service's answers (grpc_health_v1.HealthCheckResponse).
var grpcServingStatus = map[uint64]string{0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

// gRPC status codes, for reasons.
var grpcCodes = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func grpcCodeName(c int) string {
	if c >= 0 && c < len(grpcCodes) {
		return grpcCodes[c]
	}
	return "code " + strconv.Itoa(c)
}

func (p *grpcProbe) Check(ctx context.Context) error {
	conn, stop, err := connect(ctx, p.dial, p.addr, p.tls)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer stop()
	scheme := "http"
	if tc, ok := conn.(*tls.Conn); ok {
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			return errors.New("the server did not agree to HTTP/2 over TLS (ALPN h2): is it gRPC?")
		}
		scheme = "https"
	}
	status, msg, body, err := h2Call(conn, scheme, p.authority, "/grpc.health.v1.Health/Check", grpcMessage(healthRequest(p.service)))
	if err != nil {
		return err
	}
	switch status {
	case 0:
	case 12: // UNIMPLEMENTED: no health service; waiting will not add one
		return retry.Permanent(fmt.Errorf("the server has no grpc.health.v1 service (UNIMPLEMENTED%s)", colon(msg)))
	case 5:
		return fmt.Errorf("the server does not know the service %q (NOT_FOUND%s)", p.service, colon(msg))
	default:
		return fmt.Errorf("the health check failed: %s%s", grpcCodeName(status), colon(msg))
	}
	m, err := grpcUnframe(body)
	if err != nil {
		return err
	}
	st, err := healthStatus(m)
	if err != nil {
		return err
	}
	if st != 1 {
		name := grpcServingStatus[st]
		if name == "" {
			name = "status " + strconv.FormatUint(st, 10)
		}
		return errors.New(name)
	}
	return nil
}

func colon(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// healthRequest encodes HealthCheckRequest{service = 1}: a length-
// delimited field, left out when empty (proto3).
func healthRequest(service string) []byte {
	if service == "" {
		return nil
	}
	b := []byte{1<<3 | 2}
	b = binary.AppendUvarint(b, uint64(len(service)))
	return append(b, service...)
}

// healthStatus decodes HealthCheckResponse{status = 1 (enum)}, skipping
// fields it does not know, as protobuf decoders do. A missing status is
// proto3's default, 0 (UNKNOWN).
func healthStatus(b []byte) (uint64, error) {
	var status uint64
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("a malformed health response")
		}
		b = b[n:]
		field, wire := key>>3, key&7
		switch wire {
		case 0:
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return 0, errors.New("a malformed health response")
			}
			b = b[n:]
			if field == 1 {
				status = v
			}
		case 1, 5:
			size := 8
			if wire == 5 {
				size = 4
			}
			if len(b) < size {
				return 0, errors.New("a malformed health response")
			}
			b = b[size:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return 0, errors.New("a malformed health response")
			}
			b = b[n+int(l):]
		default:
			return 0, fmt.Errorf("a malformed health response (wire type %d)", wire)
		}
	}
	return status, nil
}

// grpcMessage frames a message as gRPC does: no compression, a 4-byte
// length.
func grpcMessage(m []byte) []byte {
	b := make([]byte, 5, 5+len(m))
	binary.BigEndian.PutUint32(b[1:], uint32(len(m)))
	return append(b, m...)
}

// grpcUnframe reads the one message of a unary response.
func grpcUnframe(b []byte) ([]byte, error) {
	if len(b) < 5 {
		return nil, errors.New("the server sent no health response")
	}
	if b[0] != 0 {
		return nil, errors.New("the server compressed its response, which was not asked for")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if uint64(n) != uint64(len(b)-5) {
		return nil, errors.New("a health response of the wrong length")
	}
	return b[5:], nil
}

// HTTP/2 frame types and flags used here (RFC 9113 §6).
const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2Ping         = 0x6
	h2GoAway       = 0x7
	h2WindowUpdate = 0x8
	h2Continuation = 0x9

	h2EndStream  = 0x1
	h2Ack        = 0x1
	h2EndHeaders = 0x4
	h2Padded     = 0x8
	h2Priority   = 0x20

	h2MaxFrame   = 16384    // SETTINGS_MAX_FRAME_SIZE's default, which the probe keeps
	h2MaxHeaders = 64 << 10 // a header block, with its continuations
	h2MaxBody    = 64 << 10 // a health response is a few bytes
)

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

type h2Frame struct {
	typ, flags byte
	stream     uint32
	payload    []byte
}

func writeFrame(w io.Writer, typ, flags byte, stream uint32, payload []byte) error {
	hdr := [9]byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags}
	binary.BigEndian.PutUint32(hdr[5:], stream&0x7fffffff)
	_, err := w.Write(append(hdr[:], payload...))
	return err
}

func readFrame(r io.Reader) (h2Frame, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return h2Frame{}, err
	}
	n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	if n > h2MaxFrame {
		return h2Frame{}, fmt.Errorf("a frame of %d bytes, over the %d agreed", n, h2MaxFrame)
	}
	f := h2Frame{typ: hdr[3], flags: hdr[4], stream: binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff, payload: make([]byte, n)}
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

// fragment is a HEADERS or DATA frame's payload without its padding (and a
// HEADERS frame's priority fields).
func (f h2Frame) fragment() ([]byte, error) {
	p := f.payload
	pad := 0
	if f.flags&h2Padded != 0 {
		if len(p) < 1 {
			return nil, errors.New("a padded frame without its pad length")
		}
		pad, p = int(p[0]), p[1:]
	}
	if f.typ == h2Headers && f.flags&h2Priority != 0 {
		if len(p) < 5 {
			return nil, errors.New("a HEADERS frame too short for its priority")
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, errors.New("padding longer than the frame")
	}
	return p[:len(p)-pad], nil
}

// h2Call makes one request on stream 1 of conn (a fresh connection) and
// returns the gRPC status, its message and the response body.
func h2Call(conn io.ReadWriter, scheme, authority, path string, body []byte) (int, string, []byte, error) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", scheme}, {":path", path}, {":authority", authority},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"user-agent", "initbox-waitfor"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	w := bufio.NewWriter(conn)
	w.WriteString(h2Preface)
	writeFrame(w, h2Settings, 0, 0, nil)
	writeFrame(w, h2Headers, h2EndHeaders, 1, hb.Bytes())
	writeFrame(w, h2Data, h2EndStream, 1, body)
	if err := w.Flush(); err != nil {
		return 0, "", nil, neterr.Reason(err)
	}
	br := bufio.NewReader(conn)
	if b, _ := br.Peek(5); string(b) == "HTTP/" {
		return 0, "", nil, errors.New("an HTTP/1 server answered, not HTTP/2: is it gRPC? (plaintext gRPC is h2c; --tls for TLS)")
	}
	return h2Response(br, conn)
}

// h2Response reads frames until stream 1 ends, answering SETTINGS and
// PING as a client must.
func h2Response(r io.Reader, w io.Writer) (int, string, []byte, error) {
	dec := hpack.NewDecoder(4096, nil)
	dec.SetMaxStringLength(h2MaxHeaders)
	var (
		gotHeaders bool
		fields     = map[string]string{}
		data       []byte
		block      []byte
		blockEnds  bool // the block in progress ends the stream
		inBlock    bool
	)
	for {
		f, err := readFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, "", nil, errors.New("the server closed the connection (is it HTTP/2? a plain HTTP/1 or TLS server answers otherwise)")
			}
			var ne net.Error
			if errors.As(err, &ne) {
				return 0, "", nil, neterr.Reason(err)
			}
			return 0, "", nil, fmt.Errorf("not an HTTP/2 server: %v", err)
		}
		if inBlock && f.typ != h2Continuation {
			return 0, "", nil, errors.New("a header block interrupted by another frame")
		}
		switch f.typ {
		case h2Settings:
			if f.flags&h2Ack == 0 {
				if len(f.payload)%6 != 0 {
					return 0, "", nil, errors.New("a malformed SETTINGS frame")
				}
				if err := writeFrame(w, h2Settings, h2Ack, 0, nil); err != nil {
					return 0, "", nil, neterr.Reason(err)
				}
			}
		case h2Ping:
			if f.flags&h2Ack == 0 && len(f.payload) == 8 {
				writeFrame(w, h2Ping, h2Ack, 0, f.payload)
			}
		case h2WindowUpdate:
		case h2GoAway:
			code := uint32(0)
			if len(f.payload) >= 8 {
				code = binary.BigEndian.Uint32(f.payload[4:8])
			}
			if code != 0 || !gotHeaders {
				return 0, "", nil, fmt.Errorf("the server ended the connection (GOAWAY, error code %d%s)", code, debugData(f.payload))
			}
		case h2RSTStream:
			if f.stream == 1 {
				code := uint32(0)
				if len(f.payload) == 4 {
					code = binary.BigEndian.Uint32(f.payload)
				}
				return 0, "", nil, fmt.Errorf("the server reset the request (RST_STREAM, error code %d)", code)
			}
		case h2Headers, h2Continuation:
			if f.stream != 1 {
				return 0, "", nil, fmt.Errorf("headers on stream %d, which the probe did not open", f.stream)
			}
			frag := f.payload
			if f.typ == h2Headers {
				if inBlock {
					return 0, "", nil, errors.New("a HEADERS frame inside a header block")
				}
				if frag, err = f.fragment(); err != nil {
					return 0, "", nil, err
				}
				block, blockEnds = nil, f.flags&h2EndStream != 0
			} else if !inBlock {
				return 0, "", nil, errors.New("a CONTINUATION frame outside a header block")
			}
			block = append(block, frag...)
			if len(block) > h2MaxHeaders {
				return 0, "", nil, errors.New("a header block over 64 KiB")
			}
			inBlock = f.flags&h2EndHeaders == 0
			if inBlock {
				continue
			}
			hf, err := dec.DecodeFull(block)
			if err != nil {
				return 0, "", nil, fmt.Errorf("undecodable headers: %v", err)
			}
			for _, h := range hf {
				fields[h.Name] = h.Value
			}
			if !gotHeaders {
				gotHeaders = true
				if st := fields[":status"]; st != "200" {
					return 0, "", nil, fmt.Errorf("HTTP status %s, not 200: is it a gRPC server?", st)
				}
				if ct := fields["content-type"]; !strings.HasPrefix(ct, "application/grpc") {
					return 0, "", nil, fmt.Errorf("content-type %q, not application/grpc", ct)
				}
			}
			if blockEnds {
				return grpcTrailers(fields, data)
			}
		case h2Data:
			if f.stream != 1 || !gotHeaders {
				return 0, "", nil, errors.New("DATA before the response's headers")
			}
			frag, err := f.fragment()
			if err != nil {
				return 0, "", nil, err
			}
			if data = append(data, frag...); len(data) > h2MaxBody {
				return 0, "", nil, errors.New("a health response over 64 KiB")
			}
			if f.flags&h2EndStream != 0 {
				return 0, "", nil, errors.New("the response ended without gRPC trailers")
			}
		}
	}
}

// grpcTrailers reads grpc-status and grpc-message (percent-encoded).
func grpcTrailers(fields map[string]string, data []byte) (int, string, []byte, error) {
	s, ok := fields["grpc-status"]
	if !ok {
		return 0, "", nil, errors.New("the response has no grpc-status")
	}
	code, err := strconv.Atoi(s)
	if err != nil {
		return 0, "", nil, fmt.Errorf("grpc-status %q", s)
	}
	msg := fields["grpc-message"]
	if m, err := url.PathUnescape(msg); err == nil {
		msg = m
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return code, msg, data, nil
}

func debugData(p []byte) string {
	if len(p) > 8 {
		d := p[8:]
		if len(d) > 100 {
			d = d[:100]
		}
		return ": " + strconv.Quote(string(d))
	}
	return ""
}
