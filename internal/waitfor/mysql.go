package waitfor

import (
	"context"
	"crypto/tls"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/redact"
)

// The mysql kind, registered in the table (register).
var _ = register(&kind{
	name: "mysql", aliases: []string{"mariadb"}, rank: 40, noun: "MySQL",
	usage: "mysql DSN", urlForm: "mysql://…",
	help: `(also mariadb) the server greets, as mysqladmin ping decides: a refused
		login (1045), an unknown database (1049), too many connections (1040) mean it
		is up (a warning names the code). With --query, a login and a row. DSN:
		mysql://user:pw@host:3306/db or user:pw@tcp(host:3306)/db; MYSQL_PWD and
		--password-file apply; ?tls=true or --tls for TLS.`,
	examples:   []string{"mysql 'mysql://app@db:3306/app' --password-file /secrets/password"},
	schemes:    []string{"mysql", "mariadb"},
	keepScheme: true,
	tls:        fullTLS,
	options:    func() kindOptions { return &mysqlOptions{} },
})

type mysqlOptions struct {
	query, passwordFile string
	tls                 bool
}

func (k *mysqlOptions) flags(fs *cli.FlagSet) {
	fs.String(&k.query, "query", "", "ready when `SQL` runs after login and returns a row")
	fs.String(&k.passwordFile, "password-file", "", "the password is in `FILE` (read once, never logged)")
	fs.Bool(&k.tls, "tls", "connect over TLS")
}

type mysqlProbe struct {
	connector driver.Connector
	query     string
	log       *slog.Logger
	label     string
}

// parseMySQL reads mysql://user:password@host:port/db?param=value (also
// mariadb://) or go-sql-driver's own DSN, user:password@tcp(host:port)/db.
func parseMySQL(target string) (*mysql.Config, error) {
	if scheme, rest, ok := strings.Cut(target, "://"); ok && (scheme == "mysql" || scheme == "mariadb") {
		u, err := url.Parse("mysql://" + rest)
		if err != nil {
			return nil, fmt.Errorf("invalid URL: %v", errors.Unwrap(err))
		}
		if u.Host == "" {
			return nil, errors.New("the URL has no host")
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "3306")
		}
		dsn := "tcp(" + host + ")/" + strings.TrimPrefix(u.Path, "/")
		if u.User != nil {
			pw, _ := u.User.Password()
			// The DSN takes the password as it is, up to the last @.
			dsn = u.User.Username() + ":" + pw + "@" + dsn
		}
		if u.RawQuery != "" {
			dsn += "?" + u.RawQuery
		}
		return mysql.ParseDSN(dsn)
	}
	if !strings.Contains(target, "(") && !strings.Contains(target, "/") {
		// host[:port] alone
		host := target
		if _, _, err := net.SplitHostPort(target); err != nil {
			host = net.JoinHostPort(target, "3306")
		}
		return mysql.ParseDSN("tcp(" + host + ")/")
	}
	return mysql.ParseDSN(target)
}

func (k *mysqlOptions) probe(o *options, target string) (probe, error) {
	if pw := userinfoPassword(target); pw != "" {
		o.env.Secrets.Add(pw)
	}
	cfg, err := parseMySQL(target)
	if err != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "invalid DSN: "))
	}
	if cfg.Passwd == "" {
		if pw, ok := o.env.LookupEnv("MYSQL_PWD"); ok {
			cfg.Passwd = pw // as mysqladmin reads it
		}
	}
	if k.passwordFile != "" {
		b, err := os.ReadFile(k.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %v", err)
		}
		cfg.Passwd = strings.TrimRight(string(b), "\r\n")
	}
	if cfg.Passwd != "" {
		o.env.Secrets.Add(cfg.Passwd)
	}
	if cfg.User == "" {
		cfg.User = "root" // mysqladmin's default is the login name; a container's is root
	}
	cfg.Logger = mysqlQuiet{} // its own log lines would bypass secrets masking
	if k.query != "" {
		// "USE db; SELECT 1", "SELECT 1; SELECT 2": as mysql -e runs them.
		cfg.MultiStatements = true
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if cfg.Net == "tcp" && err == nil {
		switch {
		case cfg.TLSConfig == "true" || k.tls:
			if cfg.TLS, err = o.tlsOpts.Config(host); err != nil {
				return nil, err
			}
		case cfg.TLSConfig == "" && cfg.TLS == nil:
			// As the mysql client's --ssl-mode=PREFERRED: TLS when the
			// server offers it (a REQUIRE SSL user, require_secure_transport
			// logs in), unverified, and plaintext when it does not;
			// ?tls=false for plaintext always, ?tls=true or --tls to verify.
			cfg.TLS = &tls.Config{InsecureSkipVerify: true}
			cfg.AllowFallbackToPlaintext = true
		}
		dial, err := o.dialer(host)
		if err != nil {
			return nil, err
		}
		cfg.DialFunc = cappedDial(dial)
	}
	connector, err := mysql.NewConnector(cfg) // checks the configuration once: bad input is exit 2
	if err != nil {
		return nil, err
	}
	return &mysqlProbe{connector: connector, query: k.query, log: o.env.Log, label: "mysql " + redact.URL(target)}, nil
}

// mysqlQuiet drops go-sql-driver's own log lines.
type mysqlQuiet struct{}

func (mysqlQuiet) Print(...any) {}

// mysqlUp lists the server errors that mysqladmin ping counts as "alive":
// any error the server sends (not one the client makes up) means it is
// up. Those a user most meets are named in the warning.
var mysqlUp = map[uint16]string{
	1045: "access denied",
	1049: "unknown database",
	1040: "too many connections",
	1130: "this host may not connect",
	1044: "access denied to the database",
}

func (p *mysqlProbe) Check(ctx context.Context) error {
	ctx, capErr := watchCap(ctx)
	return capErr(p.check(ctx))
}

func (p *mysqlProbe) check(ctx context.Context) error {
	conn, err := p.connector.Connect(ctx)
	var me *mysql.MySQLError
	switch {
	case err == nil:
		defer conn.Close()
	case errors.As(err, &me) && p.query == "":
		// The server answered: up, as mysqladmin ping decides.
		what := mysqlUp[me.Number]
		if what == "" {
			what = "a server error"
		}
		p.log.Warn("the server is up but refused the connection", "target", p.label, "code", me.Number, "reason", what, "message", me.Message)
		return nil
	case errors.As(err, &me):
		return fmt.Errorf("the server refused the connection: %d %s", me.Number, me.Message)
	default:
		return mysqlReason(err)
	}
	if p.query == "" {
		return nil
	}
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return errors.New("the driver cannot run queries")
	}
	rows, err := q.QueryContext(ctx, p.query, nil)
	if err != nil {
		if errors.As(err, &me) {
			return fmt.Errorf("the query failed: %d %s", me.Number, me.Message)
		}
		return mysqlReason(err)
	}
	defer rows.Close()
	// Ready when any statement's result has a row.
	for {
		dest := make([]driver.Value, len(rows.Columns()))
		err := rows.Next(dest)
		if err == nil {
			return nil
		}
		if !errors.Is(err, io.EOF) {
			if errors.As(err, &me) {
				return fmt.Errorf("the query failed: %d %s", me.Number, me.Message)
			}
			return mysqlReason(err)
		}
		next, ok := rows.(driver.RowsNextResultSet)
		if !ok || !next.HasNextResultSet() {
			return errors.New("the query returned no row")
		}
		if err := next.NextResultSet(); err != nil {
			if errors.As(err, &me) {
				return fmt.Errorf("the query failed: %d %s", me.Number, me.Message)
			}
			return mysqlReason(err)
		}
	}
}

// mysqlReason shortens the driver's network errors.
func mysqlReason(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return neterr.Reason(err)
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return errors.New("the connection broke")
	}
	return err
}
