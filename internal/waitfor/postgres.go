package waitfor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/pg"
	"github.com/initbox/initbox/internal/redact"
)

// The postgres kind, registered in the table (register).
var _ = register(&kind{
	name: "postgres", aliases: []string{"pg", "postgresql"}, rank: 30, noun: "PostgreSQL",
	usage: "postgres DSN", urlForm: "postgres://…",
	help: `the server accepts connections, as pg_isready; with --query, an
		authenticated query returns at least one row. DSN is a URL or key=value
		string; PG* variables, PGPASSFILE, PGSERVICE apply. An authentication failure
		counts as ready (the server is up) and is logged as a warning.`,
	examples:   []string{"postgres 'host=db user=app dbname=app' --query 'SELECT 1 FROM schema_migrations WHERE version >= 42'"},
	schemes:    []string{"postgres", "postgresql", "pg"},
	keepScheme: true,
	tls:        clientCert,
	options:    func() kindOptions { return &postgresOptions{} },
})

type postgresOptions struct{ query string }

func (k *postgresOptions) flags(fs *cli.FlagSet) {
	fs.String(&k.query, "query", "", "ready when `SQL` runs after login and returns a row")
}

// pgState is pg_isready's view of a server.
type pgState int

const (
	pgAccepting  pgState = iota // pg_isready exit 0
	pgRejecting                 // exit 1: 57P03, starting up, recovery, shutting down, standby
	pgNoResponse                // exit 2
)

func (s pgState) String() string {
	return [...]string{"accepting", "rejecting", "no response"}[s]
}

type postgresProbe struct {
	cfg   *pgconn.Config
	query string
	log   *slog.Logger
	label string
}

func (k *postgresOptions) probe(o *options, target string) (probe, error) {
	cfg, err := pg.ParseDSN(target, o.env.Secrets)
	if err != nil {
		return nil, err
	}
	// --cert-file/--key-file: the client certificate, re-read at every
	// connection (the DSN's sslcert/sslkey are libpq's, read once).
	if get, err := o.tlsOpts.ClientCertificate(); err != nil {
		return nil, err
	} else if get != nil {
		if !pg.EachTLS(cfg, func(tc *tls.Config) { tc.Certificates, tc.GetClientCertificate = nil, get }) {
			return nil, errors.New("--cert-file: the DSN's sslmode=disable uses no TLS")
		}
	}
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") || net.ParseIP(h) != nil {
			continue // a unix socket or an address: nothing to resolve
		}
		r, err := o.nameResolver()
		if err != nil {
			return nil, err
		}
		cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
			ips, err := r.LookupIP(ctx, host)
			if err != nil {
				return nil, err
			}
			out := make([]string, len(ips))
			for i, ip := range ips {
				out[i] = ip.String()
			}
			return out, nil
		}
		break
	}
	cfg.DialFunc = cappedDial(cfg.DialFunc)
	return &postgresProbe{cfg: cfg, query: k.query, log: o.env.Log, label: "postgres " + redact.URL(target)}, nil
}

// connectOnce opens one connection with the probe's configuration.
func connectOnce(ctx context.Context, p *postgresProbe) (*pgconn.PgConn, error) {
	return pgconn.ConnectConfig(ctx, p.cfg)
}

func (p *postgresProbe) Check(ctx context.Context) error {
	ctx, capErr := watchCap(ctx)
	return capErr(p.check(ctx))
}

func (p *postgresProbe) check(ctx context.Context) error {
	conn, err := connectOnce(ctx, p)
	if p.query == "" {
		if err == nil {
			return conn.Close(ctx)
		}
		state, why := classifyPG(err)
		if state == pgAccepting {
			// The server answered the startup exchange: ready, as for
			// pg_isready, but say why the login itself failed.
			p.log.Warn("ready, but the login failed", "target", p.label, "reason", why)
			return nil
		}
		return errors.New(why)
	}
	if err != nil {
		_, why := classifyPG(err)
		return errors.New(why)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// One row is the answer: the results are read row by row and the
	// connection is closed at the first, never collected whole.
	mrr := conn.Exec(ctx, p.query)
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		if rr.NextRow() {
			return nil
		}
		if _, err := rr.Close(); err != nil {
			break
		}
	}
	if err := mrr.Close(); err != nil {
		_, why := classifyPG(err)
		return errors.New(why)
	}
	return errors.New("the query returned no rows")
}

// classifyPG maps a connection error to pg_isready's states and a short
// reason naming the SQLSTATE when the server sent one.
func classifyPG(err error) (pgState, string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		why := fmt.Sprintf("%s %s", pe.Code, pe.Message)
		if pe.Code == "57P03" {
			if pe.Detail != "" {
				why += " (" + pe.Detail + ")"
			}
			return pgRejecting, why
		}
		return pgAccepting, why
	}
	msg := neterr.Reason(err).Error()
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && msg == err.Error() {
		msg = pg.ConnectReason(msg)
	}
	if pgconn.Timeout(err) {
		msg = "timeout"
	}
	return pgNoResponse, msg
}
