package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FlagSet is one applet's flags. Every flag has an environment twin,
// INITBOX_<NAME> (dashes become underscores), which supplies the value when
// the flag is not given on the command line. Flags are GNU style: --name
// value, --name=value, and they may follow positional arguments; "--" ends
// the flags.
type FlagSet struct {
	applet string
	fs     *flag.FlagSet
	flags  []*flagInfo
	// dashdash is the index in parse's result of the first argument after
	// a "--", or -1.
	dashdash int
}

type flagInfo struct {
	name, short, env, usage, def string
	value                        flag.Value
	repeat                       bool
	isBool                       bool
}

func newFlagSet(applet string) *FlagSet {
	fs := flag.NewFlagSet(applet, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &FlagSet{applet: applet, fs: fs}
}

// EnvName is the environment twin of a flag.
func EnvName(flagName string) string {
	return "INITBOX_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Var registers a flag with a custom value. def is the default as shown in help.
func (f *FlagSet) Var(v flag.Value, name, def, usage string) {
	f.fs.Var(v, name, usage)
	_, isBool := v.(interface{ IsBoolFlag() bool })
	_, repeat := v.(*stringList)
	f.flags = append(f.flags, &flagInfo{name: name, env: EnvName(name), usage: usage, def: def, value: v, repeat: repeat, isBool: isBool})
}

// Alias adds a one-letter alias (-v for --verbose).
func (f *FlagSet) Alias(short, name string) {
	fl := f.fs.Lookup(name)
	f.fs.Var(fl.Value, short, fl.Usage)
	for _, fi := range f.flags {
		if fi.name == name {
			fi.short = short
		}
	}
}

// String registers a string flag.
func (f *FlagSet) String(p *string, name, def, usage string) {
	*p = def
	f.Var((*stringValue)(p), name, def, usage)
}

// Bool registers a boolean flag, false by default.
func (f *FlagSet) Bool(p *bool, name, usage string) {
	f.Var((*boolValue)(p), name, "", usage)
}

// Int registers an integer flag.
func (f *FlagSet) Int(p *int, name string, def int, usage string) {
	*p = def
	f.Var((*intValue)(p), name, strconv.Itoa(def), usage)
}

// Duration registers a Go duration flag ("30s", "5m", "1h30m"; "0" allowed).
func (f *FlagSet) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	shown := def.String()
	if def == 0 {
		shown = "0"
	}
	f.Var((*durationValue)(p), name, shown, usage)
}

// Strings registers a repeatable flag; its environment twin holds one value
// per line.
func (f *FlagSet) Strings(p *[]string, name, usage string) {
	f.Var((*stringList)(p), name, "", usage)
}

// Lookup tells whether the named flag was set, on the command line or
// through its environment twin.
func (f *FlagSet) set(name string) bool {
	found := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			found = true
		}
	})
	return found
}

// parseFlags parses flags and positional arguments in any order, up to a
// "--" (reported), after which everything is positional.
func (f *FlagSet) parseFlags(args []string) (pos []string, dashdash bool, err error) {
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, false, flagError(err)
		}
		rest := f.fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), true, nil
		}
		if len(rest) == 0 {
			return pos, false, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// negativeArg is the index of the first word of args before any "--" that
// looks like a negative number and is not the value of the flag before it;
// -1 when there is none.
func (f *FlagSet) negativeArg(args []string) int {
	for i, a := range args {
		if a == "--" {
			return -1
		}
		if len(a) < 2 || a[0] != '-' || !(a[1] >= '0' && a[1] <= '9' || a[1] == '.') {
			continue
		}
		if i > 0 {
			prev := strings.TrimLeft(args[i-1], "-")
			if strings.HasPrefix(args[i-1], "-") && !strings.Contains(prev, "=") {
				if fl := f.fs.Lookup(prev); fl != nil {
					if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
						continue // --timeout -1s: the flag's value, judged by it
					}
				}
			}
		}
		return i
	}
	return -1
}

// parse parses args and then the environment twins of the flags not given.
// It returns the positional arguments.
func (f *FlagSet) parse(args []string, lookupEnv func(string) (string, bool)) ([]string, error) {
	var pos []string
	f.dashdash = -1
	for len(args) > 0 {
		// A word such as -1s or -5 is a negative number, not a flag (no
		// flag starts with a digit): it is an argument, for the applet to
		// judge ("negative duration"), unless it is a flag's value.
		head, tail := args, []string(nil)
		if k := f.negativeArg(args); k >= 0 {
			head, tail = args[:k], args[k:]
		}
		p, dashdash, err := f.parseFlags(head)
		if err != nil {
			return nil, err
		}
		if dashdash {
			f.dashdash = len(pos) + len(p) - len(f.fs.Args())
		}
		pos = append(pos, p...)
		if dashdash || tail == nil {
			break
		}
		pos = append(pos, tail[0])
		args = tail[1:]
	}
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for _, fi := range f.flags {
		if given[fi.name] || (fi.short != "" && given[fi.short]) {
			continue
		}
		v, ok := lookupEnv(fi.env)
		if !ok || v == "" {
			continue
		}
		vals := []string{v}
		if fi.repeat {
			vals = splitLines(v)
		}
		for _, one := range vals {
			if err := f.fs.Set(fi.name, one); err != nil {
				return nil, fmt.Errorf("invalid value %q for $%s (the twin of --%s): %v", one, fi.env, fi.name, unwrapSetErr(err))
			}
		}
	}
	return pos, nil
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// The patterns compile on first use: only a bad flag needs them.
var (
	flagNameRe     = lazyRe(`flag -{1,2}([A-Za-z0-9][A-Za-z0-9_-]*)`)
	trailingFlagRe = lazyRe(`: -{1,2}([A-Za-z0-9][A-Za-z0-9_-]*)$`)
	notDefRe       = lazyRe(`^flag provided but not defined: -{1,2}(.*)$`)
	invalidRe      = lazyRe(`^invalid (?:boolean )?value "(.*)" for flag -{1,2}([^:]+): (.*)$`)
	errHelpText    = flag.ErrHelp.Error()
)

func lazyRe(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// flagError rewrites the standard library's messages in GNU spelling:
// "invalid value "banana" for --timeout: not a duration …".
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	if m := notDefRe().FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("unknown flag --%s", m[1])
	}
	if m := invalidRe().FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("invalid value %q for --%s: %s", m[1], m[2], m[3])
	}
	msg = flagNameRe().ReplaceAllString(msg, "--$1")
	return errors.New(trailingFlagRe().ReplaceAllString(msg, ": --$1"))
}

func unwrapSetErr(err error) string {
	msg := err.Error()
	if m := invalidRe().FindStringSubmatch(msg); m != nil {
		return m[3]
	}
	return msg
}

func isHelp(err error) bool { return err != nil && err.Error() == errHelpText }

// usage writes the flag table for help.
func (f *FlagSet) usage(w io.Writer) {
	type row struct{ left, right string }
	var rows []row
	width := 0
	for _, fi := range f.flags {
		name, usage := flag.UnquoteUsage(f.fs.Lookup(fi.name))
		left := "--" + fi.name
		if fi.short != "" {
			left = "-" + fi.short + ", " + left
		}
		if !fi.isBool && name != "" {
			left += " " + name
		}
		right := usage
		if fi.def != "" && fi.def != "0" && fi.def != `""` || (fi.def == "0" && isDuration(fi.value)) {
			right += fmt.Sprintf(" (default %s)", fi.def)
		}
		right += " [$" + fi.env + "]"
		if len(left) > width {
			width = len(left)
		}
		rows = append(rows, row{left, right})
	}
	if width > 30 {
		width = 30
	}
	for _, r := range rows {
		if len(r.left) > width {
			fmt.Fprintf(w, "  %s\n  %*s  %s\n", r.left, width, "", r.right)
			continue
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, r.right)
	}
}

func isDuration(v flag.Value) bool { _, ok := v.(*durationValue); return ok }

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*b = boolValue(x)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (i *intValue) Set(v string) error {
	x, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	*i = intValue(x)
	return nil
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	x, err := ParseDuration(v)
	if err != nil {
		return err
	}
	*d = durationValue(x)
	return nil
}
func (d *durationValue) String() string { return time.Duration(*d).String() }

// ParseDuration parses a Go duration; a bare "0" means zero. Negative
// durations are refused.
func ParseDuration(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	x, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("not a duration (use a number with a unit: 500ms, 30s, 5m, 1h30m)")
	}
	if x < 0 {
		return 0, fmt.Errorf("negative duration")
	}
	return x, nil
}

type stringList []string

func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
func (l *stringList) String() string     { return strings.Join(*l, ",") }

// scan finds a flag's value in args without parsing them, for when parsing
// failed but the flag still matters (where to write the termination
// message); then the environment twin.
func scan(args []string, name string, lookupEnv func(string) (string, bool)) (string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, p := range []string{"--" + name, "-" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return lookupEnv(EnvName(name))
}

// Bytes registers a size flag: plain bytes or a number with a unit, decimal
// (KB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB).
func (f *FlagSet) Bytes(p *int64, name string, def int64, usage string) {
	*p = def
	f.Var((*bytesValue)(p), name, FormatBytes(def), usage)
}

type bytesValue int64

func (b *bytesValue) Set(v string) error {
	n, err := ParseBytes(v)
	if err != nil {
		return err
	}
	*b = bytesValue(n)
	return nil
}
func (b *bytesValue) String() string { return FormatBytes(int64(*b)) }

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseBytes reads "512MiB", "1GiB", "100KB", "1.5GB" or "4096".
func ParseBytes(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	bad := fmt.Errorf("not a size (use bytes or a unit: 100KB, 512MiB, 1GiB)")
	if s == "" {
		return 0, bad
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > (1<<62)/mult {
			return 0, bad
		}
		return n * mult, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x < 0 || x*float64(mult) > 1<<62 {
		return 0, bad
	}
	return int64(x * float64(mult)), nil
}

// FormatBytes writes n in the largest binary unit that divides it evenly.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// HumanBytes writes n approximately, for progress lines: "12.3 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
