package register

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/pg"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/tmpl"
)

// column is a column and its templated value.
type column struct {
	name  string
	value *tmplT
}

type pgTarget struct {
	c      *command
	cfg    *pgconn.Config
	shown  string
	table  string // quoted, schema-qualified when given so
	keys   []column
	sets   []column
	touch  []string
	create bool

	params  [][]byte // keys' then sets' rendered values
	upsert  string
	delete  string
	ddl     string
	missing bool // the table was missing at the last attempt
}

func (c *command) newPostgres(dsn string) (target, error) {
	if err := c.only("postgres", map[string]bool{
		"data": len(c.data) > 0, "json": c.json != "", "header": len(c.headers) > 0,
		"output": c.output != "", "deregister-url": c.deregURL != "", "deregister-data": c.deregData != "",
		"ca-file": c.tls.CAFile != "", "insecure-skip-verify": c.tls.Insecure,
	}); err != nil {
		return nil, err
	}
	cfg, err := pg.ParseDSN(dsn, c.env.Secrets)
	if err != nil {
		return nil, err
	}
	shown := fmt.Sprintf("postgres %s/%s", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
	p := &pgTarget{c: c, cfg: cfg, shown: shown, create: c.createTable}
	if c.table == "" {
		return nil, errors.New("postgres wants --table")
	}
	if len(c.keys) == 0 {
		return nil, errors.New("postgres wants at least one --key COL=TEMPLATE: the row's identity")
	}
	parts := strings.Split(c.table, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("invalid --table %q: want TABLE or SCHEMA.TABLE", c.table)
	}
	for i, part := range parts {
		if err := checkIdent(part); err != nil {
			return nil, fmt.Errorf("--table: %w", err)
		}
		parts[i] = quoteIdent(part)
	}
	p.table = strings.Join(parts, ".")
	seen := map[string]bool{}
	for _, l := range []struct {
		flag string
		in   []string
		out  *[]column
	}{{"--key", c.keys, &p.keys}, {"--set", c.sets, &p.sets}} {
		for _, kv := range l.in {
			name, text, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("invalid %s %q: want COL=TEMPLATE", l.flag, kv)
			}
			if err := checkIdent(name); err != nil {
				return nil, fmt.Errorf("%s: %w", l.flag, err)
			}
			if seen[name] {
				return nil, fmt.Errorf("column %s is given twice", name)
			}
			seen[name] = true
			t, err := c.parse(l.flag+" "+name, text)
			if err != nil {
				return nil, err
			}
			*l.out = append(*l.out, column{name: name, value: t})
		}
	}
	for _, name := range c.touch {
		if err := checkIdent(name); err != nil {
			return nil, fmt.Errorf("--touch: %w", err)
		}
		if seen[name] {
			return nil, fmt.Errorf("column %s is given twice", name)
		}
		seen[name] = true
		p.touch = append(p.touch, name)
	}
	p.statements()
	return p, nil
}

// checkIdent accepts the names that need no thought: letters, digits, _
// and $, starting with a letter or _, at most 63 bytes (PostgreSQL's
// limit). They are quoted all the same, so case is kept.
func checkIdent(s string) error {
	ok := s != "" && len(s) <= 63
	for i := 0; ok && i < len(s); i++ {
		ch := s[i]
		ok = ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || i > 0 && (ch >= '0' && ch <= '9' || ch == '$')
	}
	if !ok {
		return fmt.Errorf("invalid identifier %q: letters, digits, _ and $, starting with a letter or _, at most 63 bytes", s)
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// statements builds the SQL once; values are only ever parameters.
func (p *pgTarget) statements() {
	var cols, vals, keys, updates, where, ddl []string
	n := 0
	for _, k := range p.keys {
		n++
		cols, vals = append(cols, quoteIdent(k.name)), append(vals, "$"+strconv.Itoa(n))
		keys = append(keys, quoteIdent(k.name))
		where = append(where, quoteIdent(k.name)+" = $"+strconv.Itoa(n))
		ddl = append(ddl, quoteIdent(k.name)+" text NOT NULL")
	}
	for _, s := range p.sets {
		n++
		cols, vals = append(cols, quoteIdent(s.name)), append(vals, "$"+strconv.Itoa(n))
		updates = append(updates, quoteIdent(s.name)+" = EXCLUDED."+quoteIdent(s.name))
		ddl = append(ddl, quoteIdent(s.name)+" text")
	}
	for _, t := range p.touch {
		cols, vals = append(cols, quoteIdent(t)), append(vals, "now()")
		updates = append(updates, quoteIdent(t)+" = EXCLUDED."+quoteIdent(t))
		ddl = append(ddl, quoteIdent(t)+" timestamptz")
	}
	conflict := "DO NOTHING"
	if len(updates) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(updates, ", ")
	}
	p.upsert = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) %s",
		p.table, strings.Join(cols, ", "), strings.Join(vals, ", "), strings.Join(keys, ", "), conflict)
	p.delete = fmt.Sprintf("DELETE FROM %s WHERE %s", p.table, strings.Join(where, " AND "))
	p.ddl = fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s, PRIMARY KEY (%s))", p.table, strings.Join(ddl, ", "), strings.Join(keys, ", "))
}

func (p *pgTarget) label() string { return p.shown + " table " + p.c.table }

func (p *pgTarget) render(data tmpl.Data) error {
	p.params = p.params[:0]
	for _, col := range append(append([]column(nil), p.keys...), p.sets...) {
		v, err := col.value.exec(data)
		if err != nil {
			return err
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("the value of %s contains a NUL byte, which PostgreSQL text cannot hold", col.name)
		}
		p.params = append(p.params, []byte(v))
	}
	return nil
}

func (p *pgTarget) register(ctx context.Context, _ int) error {
	return p.exec(ctx, func(conn *pgconn.PgConn) error {
		if p.create {
			if err := p.createTable(ctx, conn); err != nil {
				return err
			}
		}
		return conn.ExecParams(ctx, p.upsert, p.params, nil, nil, nil).Read().Err
	})
}

// createTable runs CREATE TABLE IF NOT EXISTS so that a crowd of pods can
// all do it at once. PostgreSQL's IF NOT EXISTS is not safe against itself:
// two sessions can both find the table missing, and the second fails with
// 23505 on pg_type_typname_nsp_index (or 42P07). A session advisory lock
// keyed by the table serialises the creators (it goes with the connection,
// which each attempt closes); a 23505 or 42P07 from a creator that took no
// lock (another tool, a migration) still means the table exists.
func (p *pgTarget) createTable(ctx context.Context, conn *pgconn.PgConn) error {
	key := "'initbox register " + p.table + "'" // identifiers are checked: no quotes inside
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext("+key+"))").ReadAll(); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, p.ddl).ReadAll()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P07") {
		err = nil
	}
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtext("+key+"))").ReadAll()
	return err
}

func (p *pgTarget) deregister(ctx context.Context) error {
	return p.exec(ctx, func(conn *pgconn.PgConn) error {
		res := conn.ExecParams(ctx, p.delete, p.params[:len(p.keys)], nil, nil, nil).Read()
		err := res.Err
		if err == nil && res.CommandTag.RowsAffected() == 0 {
			p.c.env.Log.Info("already gone: no such row", "target", p.label())
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" {
			p.c.env.Log.Info("already gone: the table does not exist", "target", p.label())
			return nil
		}
		return err
	})
}

// exec runs f on a fresh connection and classifies its error: worth
// retrying (the server is not there or not ready, the table not yet
// created), or not (any other SQL error).
func (p *pgTarget) exec(ctx context.Context, f func(*pgconn.PgConn) error) error {
	conn, err := pgconn.ConnectConfig(ctx, p.cfg)
	if err != nil {
		return p.classify(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return p.classify(f(conn))
}

func (p *pgTarget) classify(err error) error {
	if err == nil {
		p.missing = false
		return nil
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		msg := neterr.Reason(err).Error()
		if pgconn.Timeout(err) {
			msg = "timeout"
		} else {
			msg = pg.ConnectReason(msg)
		}
		return errors.New(msg)
	}
	why := fmt.Errorf("%s %s", pe.Code, pe.Message)
	switch {
	case pe.Code == "42P01":
		if !p.missing {
			p.c.env.Log.Info("the table does not exist yet; waiting for it (a migration may create it, or give --create-table)", "target", p.label())
		}
		p.missing = true
		return fmt.Errorf("table %s does not exist yet", p.c.table)
	case pe.Code == "57P03", pe.Code == "53300", pe.Code == "40001", pe.Code == "40P01",
		pe.Code == "57P01", pe.Code == "57P02", strings.HasPrefix(pe.Code, "08"):
		return why
	}
	return retry.Permanent(why)
}
