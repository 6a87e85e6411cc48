package datasets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visrec/visrec/events"
)

func writeTemp(t testing.TB, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadUIR(t *testing.T) {
	tests := []struct {
		name, text string
		opts       UIROptions
		n          int
		typ        events.Type
		first      Interaction // of the time-sorted result
		firstUser  string
	}{
		{"tabs UIRT", "u1\ti1\t4\t20\nu2\ti1\t5\t10\n", UIROptions{}, 2, events.Rating,
			Interaction{Value: 5, TS: 10_000, Type: events.Rating}, "u2"},
		{"commas UIR", "u1,i1,4.5\n\nu2,i2,3\n", UIROptions{}, 2, events.Rating,
			Interaction{Value: 4.5, Type: events.Rating}, "u1"},
		{"spaces UI", "u1  i1\n u2 i2 \n", UIROptions{}, 2, events.View,
			Interaction{Value: 1, Type: events.View}, "u1"},
		{"header skipped, millis, decimal ts", "user item rating ts\nu1 i1 1 20.0\nu2 i1 1 10\n",
			UIROptions{SkipLines: 1, TimestampMillis: true}, 2, events.Rating,
			Interaction{Value: 1, TS: 10, Type: events.Rating}, "u2"},
		{"explicit sep and type", "u1::i1::1\n", UIROptions{Sep: "::", Type: events.Purchase}, 1, events.Purchase,
			Interaction{Value: 1, Type: events.Purchase}, "u1"},
		{"CRLF", "u1\ti1\t2\t5\r\n", UIROptions{}, 1, events.Rating,
			Interaction{Value: 2, TS: 5000, Type: events.Rating}, "u1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := LoadUIR(writeTemp(t, "data.txt", tt.text), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds.Interactions) != tt.n {
				t.Fatalf("%d interactions, want %d", len(ds.Interactions), tt.n)
			}
			got := ds.Interactions[0]
			if ds.Users[got.User] != tt.firstUser || got.Value != tt.first.Value || got.TS != tt.first.TS || got.Type != tt.first.Type {
				t.Errorf("first %+v of user %s, want %+v of %s", got, ds.Users[got.User], tt.first, tt.firstUser)
			}
			if ds.Name != "data" {
				t.Errorf("name %q", ds.Name)
			}
		})
	}
}

func TestLoadUIRMalformed(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"one column", "u1\n", "data.txt:1: 1 columns"},
		{"five columns", "a b c d e\n", "data.txt:1: 5 columns"},
		{"column count changes", "u1,i1,3\nu2,i2\n", "data.txt:2: 2 columns"},
		{"bad rating", "u1\ti1\t4\nu1\ti2\tgood\n", "data.txt:2: rating \"good\""},
		{"NaN rating", "u1 i1 NaN\n", "data.txt:1: rating \"NaN\" is not a finite number"},
		{"bad timestamp", "u1 i1 1 2\nu1 i1 1 yesterday\n", "data.txt:2: timestamp \"yesterday\""},
		{"empty id", "u1,,3\n", "data.txt:1: empty item id"},
		{"control byte", "u\x01 i 3\n", "data.txt:1: user id"},
		{"bad UTF-8", "u\xff i 3\n", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadUIR(writeTemp(t, "data.txt", tt.text), UIROptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v does not match ErrMalformed", err)
			}
		})
	}
}

func TestLoadUIRSkipBad(t *testing.T) {
	var bad []string
	opts := UIROptions{ReadOptions: ReadOptions{OnBad: func(err error) error {
		bad = append(bad, err.Error())
		return nil
	}}}
	ds, err := ReadUIR(strings.NewReader("u1 i1 1\nu2 i2 x\nu3 i3 2\n"), "mem", opts)
	if err != nil || len(ds.Interactions) != 2 || len(bad) != 1 || !strings.HasPrefix(bad[0], "mem:2:") {
		t.Fatalf("err %v, %d interactions, bad %q", err, len(ds.Interactions), bad)
	}
	stop := errors.New("stop")
	opts.OnBad = func(error) error { return stop }
	if _, err := ReadUIR(strings.NewReader("u1 i1 x\n"), "mem", opts); err != stop {
		t.Fatalf("err %v, want OnBad's", err)
	}
}

func TestLoadUIRLineTooLong(t *testing.T) {
	text := "u1 i1 1\nu2 " + strings.Repeat("i", 200) + " 1\n"
	_, err := ReadUIR(strings.NewReader(text), "mem", UIROptions{ReadOptions: ReadOptions{MaxLineBytes: 64}})
	if err == nil || !strings.Contains(err.Error(), "mem:2: line longer than 64 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzUIR(f *testing.F) {
	for _, s := range []string{"u1\ti1\t4\t20\n", "u,i,1\n", "a b\n", "u i 1 2.5e9\n", "x\ty\tNaN\n", "\n\n", "u i 1 99999999999999999999\n"} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte("a::b::1\n"), "::")
	f.Fuzz(func(t *testing.T, data []byte, sep string) {
		ds, err := ReadUIR(strings.NewReader(string(data)), "fuzz", UIROptions{Sep: sep, ReadOptions: ReadOptions{MaxLineBytes: 1 << 16}})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		for _, x := range ds.Interactions {
			if int(x.User) >= len(ds.Users) || int(x.Item) >= len(ds.Items) || x.Value != x.Value {
				t.Fatalf("bad interaction %+v", x)
			}
		}
	})
}
