package tmpl

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/Masterminds/sprig/v3"
)

// Every function a template can call is a function of its arguments: the
// same call gives the same answer, so an unchanged input renders an
// unchanged file (and whatever watches it is not restarted). Each function
// of the whole map is called with generated arguments of its parameter
// types, several times; any difference fails.
func TestEveryFunctionIsDeterministic(t *testing.T) {
	// A real key and CA, from sprig's own full map, so the functions that
	// take them reach their success paths.
	full := sprig.TxtFuncMap()
	key := full["genPrivateKey"].(func(string) string)("ecdsa")
	ca := reflect.ValueOf(full["genCA"]).Call([]reflect.Value{reflect.ValueOf("ca"), reflect.ValueOf(30)})[0]
	samples := map[reflect.Kind][]any{
		reflect.String:  {"abcdefghij", "ecdsa", "Hello, World 123", "127.0.0.1", key},
		reflect.Int:     {7, 1000, 3},
		reflect.Int64:   {int64(7), int64(1000), int64(3)},
		reflect.Uint32:  {uint32(7), uint32(1000), uint32(3)},
		reflect.Float64: {1.5, 1000.0, 3.0},
		reflect.Bool:    {true, false, true},
	}
	// Letters for list functions; IPs and names for the certificate ones.
	lists := [][]any{{"a", "b", "c", "d", "e", "f", "g", "h"}, {"127.0.0.1"}, {"x.example"}}
	argFor := func(typ reflect.Type, i int) (reflect.Value, bool) {
		switch typ.Kind() {
		case reflect.Interface:
			// any: a list, so list functions (shuffle, …) have work to do;
			// a string; a time, for the date functions.
			switch i % 3 {
			case 0:
				return reflect.ValueOf(lists[i%len(lists)]), true
			case 1:
				return reflect.ValueOf("abcdefghij"), true
			}
			return reflect.ValueOf(time.Unix(1700000000, 0).UTC()), true
		case reflect.Slice:
			if typ.Elem().Kind() == reflect.Interface {
				return reflect.ValueOf(lists[i%len(lists)]), true
			}
			if typ.Elem().Kind() == reflect.String {
				return reflect.ValueOf([]string{"a", "b", "c", "d"}), true
			}
		case reflect.Struct:
			if typ == reflect.TypeOf(time.Time{}) {
				return reflect.ValueOf(time.Unix(1700000000, 0).UTC()), true
			}
			if typ == ca.Type() {
				return ca, true
			}
		case reflect.Map:
			if typ.Key().Kind() == reflect.String && typ.Elem().Kind() == reflect.Interface {
				return reflect.ValueOf(map[string]any{"a": "1", "b": "2"}), true
			}
		}
		if s, ok := samples[typ.Kind()]; ok {
			return reflect.ValueOf(s[i%len(s)]).Convert(typ), true
		}
		return reflect.Value{}, false
	}
	m := funcs()
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	var called, bad []string
	results := map[string]string{} // name and argument set: the answer
	sweep := func(second bool) {
		for _, name := range names {
			fn := reflect.ValueOf(m[name])
			typ := fn.Type()
			if name == "file" {
				continue // reads a file: a function of the file, tested apart
			}
			nIn := typ.NumIn()
			if typ.IsVariadic() {
				nIn-- // the fixed arguments, then two of the variadic type
			}
			// Several argument sets, shifted through the samples, so that
			// each function's success path is reached by at least one.
			for shift := 0; shift < 5; shift++ {
				args := []reflect.Value{}
				ok := true
				for i := 0; i < nIn; i++ {
					v, good := argFor(typ.In(i), i+shift)
					ok = ok && good
					args = append(args, v)
				}
				if typ.IsVariadic() {
					for i := 0; i < 2 && ok; i++ {
						v, good := argFor(typ.In(typ.NumIn()-1).Elem(), nIn+i+shift)
						ok = ok && good
						args = append(args, v)
					}
				}
				if !ok {
					t.Errorf("%s%v: no sample arguments for its types; add them here", name, typ)
					break
				}
				call := func() (out string) {
					defer func() {
						if r := recover(); r != nil {
							out = fmt.Sprint("panic: ", r)
						}
					}()
					var res []any
					for _, v := range fn.Call(args) {
						res = append(res, v.Interface())
					}
					return fmt.Sprintf("%v", res)
				}
				first := call()
				differs := false
				for i := 0; i < 3 && !differs; i++ {
					differs = call() != first
				}
				id := fmt.Sprint(name, shift)
				if second {
					differs = differs || results[id] != first
				}
				results[id] = first
				if differs {
					bad = append(bad, fmt.Sprintf("%s%v", name, args))
					break
				}
			}
			if !second {
				called = append(called, name)
			}
		}
	}
	sweep(false)
	// A function of the clock answers alike within a second: ask again
	// in the next one.
	time.Sleep(1100 * time.Millisecond)
	sweep(true)
	if len(bad) > 0 {
		t.Errorf("non-deterministic template functions: %v", bad)
	}
	if len(called) < 100 {
		t.Fatalf("only %d functions called: the map is not what this test thinks", len(called))
	}
}
