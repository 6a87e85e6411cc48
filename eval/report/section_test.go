package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendSection(t *testing.T) {
	const doc = "# Results\n" +
		"\n" +
		"Intro.\n" +
		"\n" +
		"## Offline\n" +
		"\n" +
		"old offline table\n" +
		"\n" +
		"```sh\n" +
		"## not a heading, inside a fence\n" +
		"```\n" +
		"\n" +
		"### Offline detail\n" +
		"\n" +
		"old detail\n" +
		"\n" +
		"## Streaming\n" +
		"\n" +
		"streaming table\n"
	for _, tc := range []struct {
		name, doc, heading, body, want string
	}{
		{
			name:    "replace keeps the sections around it",
			doc:     doc,
			heading: "Offline",
			body:    "new offline table\n",
			want: "# Results\n\nIntro.\n\n" +
				"## Offline\n\nnew offline table\n\n" +
				"## Streaming\n\nstreaming table\n",
		},
		{
			name:    "replace the last section",
			doc:     doc,
			heading: "Streaming",
			body:    "\n\nnew streaming\n\n\n",
			want:    doc[:len(doc)-len("streaming table\n")] + "new streaming\n",
		},
		{
			name:    "append after one blank line",
			doc:     doc + "\n\n\n",
			heading: "Peers",
			body:    "| a |\n| - |\n| 1 |",
			want:    doc + "\n## Peers\n\n| a |\n| - |\n| 1 |\n",
		},
		{
			name:    "a heading inside a fence is not a section",
			doc:     doc,
			heading: "not a heading, inside a fence",
			body:    "x",
			want:    doc + "\n## not a heading, inside a fence\n\nx\n",
		},
		{
			name:    "new file",
			doc:     "",
			heading: "Offline",
			body:    "t",
			want:    "## Offline\n\nt\n",
		},
		{
			name:    "level-3 heading with the same text is not the section",
			doc:     "## A\n\na\n\n### B\n\nb\n",
			heading: "B",
			body:    "new",
			want:    "## A\n\na\n\n### B\n\nb\n\n## B\n\nnew\n",
		},
		{
			name:    "closing hashes and CRLF lines",
			doc:     "## A ##\r\n\r\nold\r\n## B\r\nb\r\n",
			heading: "A",
			body:    "new",
			want:    "## A\n\nnew\n\n## B\r\nb\r\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "results.md")
			if tc.doc != "" {
				if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := AppendSection(path, tc.heading, tc.body); err != nil {
				t.Fatal(err)
			}
			got := readFile(t, path)
			if got != tc.want {
				t.Fatalf("got:\n%q\nwant:\n%q", got, tc.want)
			}
			// Idempotent: a second identical call changes nothing.
			if err := AppendSection(path, tc.heading, tc.body); err != nil {
				t.Fatal(err)
			}
			if again := readFile(t, path); again != got {
				t.Fatalf("second call changed the file:\n%q\nthen:\n%q", got, again)
			}
			if tc.doc != "" {
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("mode %v, want 0600 kept", st.Mode().Perm())
				}
			}
		})
	}
}

func TestAppendSectionUpdatesOnlyItsOwnSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.md")
	steps := []struct{ heading, body string }{
		{"A", "a1"}, {"B", "b1"}, {"A", "a2"}, {"C", "c1"}, {"B", "b2\n\n### B detail\n\nmore"},
	}
	for _, s := range steps {
		if err := AppendSection(path, s.heading, s.body); err != nil {
			t.Fatal(err)
		}
	}
	want := "## A\n\na2\n\n## B\n\nb2\n\n### B detail\n\nmore\n\n## C\n\nc1\n"
	if got := readFile(t, path); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}

func TestAppendSectionRejectsBadInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.md")
	for _, tc := range []struct{ heading, body string }{
		{"", "x"},
		{"two\nlines", "x"},
		{"A", "text\n## Sneaky\nmore"},
		{"A", "# Top"},
		{"A", "```go\nunclosed fence"},
		{"A ##", "closing hashes would not read back"},
	} {
		if err := AppendSection(path, tc.heading, tc.body); err == nil {
			t.Errorf("AppendSection(%q, %q): no error", tc.heading, tc.body)
		}
	}
	// A level-2 heading inside a fence in the body is fine.
	if err := AppendSection(path, "A", "```\n## in a fence\n```"); err != nil {
		t.Errorf("fenced heading rejected: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	// A file that ends inside an open fence cannot take a new section.
	open := filepath.Join(t.TempDir(), "open.md")
	if err := os.WriteFile(open, []byte("## A\n\n```\nno end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := AppendSection(open, "B", "b"); err == nil {
		t.Error("append after an unclosed fence: no error")
	}
}

// FuzzReplaceSection checks that an update is idempotent, that the section reads back,
// and that the text before the section is kept.
func FuzzReplaceSection(f *testing.F) {
	f.Add("# T\n\n## A\n\nold\n\n## B\n\nb\n", "A", "new")
	f.Add("```\n## A\n```\n", "A", "x\n```\n## y\n```")
	f.Add("", "A", "")
	f.Add("```\n", "A", "")
	f.Add("~~~~\n## A\n```\n", "A", "b")
	f.Fuzz(func(t *testing.T, doc, heading, body string) {
		section, err := sectionText(heading, body)
		if err != nil {
			return
		}
		once, err := replaceSection(doc, heading, section)
		if err != nil {
			return
		}
		if twice, err := replaceSection(once, heading, section); err != nil || twice != once {
			t.Fatalf("not idempotent:\n%q\n%q", once, twice)
		}
		if !strings.Contains(once, section) {
			t.Fatalf("section %q missing from %q", section, once)
		}
	})
}
