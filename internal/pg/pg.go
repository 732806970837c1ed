// Package pg is what waitfor and register share about PostgreSQL
// connection strings and pgconn's errors.
package pg

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/initbox/initbox/internal/redact"
)

// ParseDSN parses a URL or key=value connection string (pg:// is taken for
// postgres://, PG* variables apply) and registers its password in secrets
// — by its shape first, since pgconn's error for a malformed string may
// quote part of it. The connect timeout is left to each attempt's context.
func ParseDSN(dsn string, secrets *redact.Set) (*pgconn.Config, error) {
	if rest, ok := strings.CutPrefix(dsn, "pg://"); ok {
		dsn = "postgres://" + rest
	}
	secrets.Add(redact.DSNSecrets(dsn)...)
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		// Keep the reason, not the connection string pgconn quotes first.
		msg := err.Error()
		if i := strings.Index(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i >= 0 {
			msg = msg[i+3:]
		}
		return nil, fmt.Errorf("invalid DSN: %s", redact.Text(msg))
	}
	secrets.Add(cfg.Password)
	cfg.ConnectTimeout = 0
	if err := applyLibpq(cfg, dsn); err != nil {
		return nil, fmt.Errorf("invalid DSN: %s", redact.Text(err.Error()))
	}
	return cfg, nil
}

// ConnectReason shortens pgconn's connection error text: it drops the
// "failed to connect to `user=… database=…`: ADDR (HOST): " prefix and keeps
// everything after it ("failed to receive message: invalid message length:
// -111025", not just "-111025").
func ConnectReason(msg string) string {
	if !strings.HasPrefix(msg, "failed to connect to `") {
		return msg
	}
	rest := msg[len("failed to connect to `"):]
	if i := strings.Index(rest, "`: "); i >= 0 {
		rest = rest[i+3:]
	}
	if i := strings.Index(rest, "): "); i >= 0 {
		rest = rest[i+3:]
	}
	return rest
}
