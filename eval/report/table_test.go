package report

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleTable() Table {
	t := Table{
		Title:   "MovieLens, temporal split",
		Command: Command("visrec", "eval", "--split", "temporal", "--models", "bpr,mf"),
		Columns: []string{"model", "recall@10", "ndcg@10", "users"},
	}
	t.AddRow("bpr", 0.123456, float32(0.5), 610)
	t.AddRow("popularity", 0.1, 0.25, int64(610))
	return t
}

func TestWriteMarkdownGolden(t *testing.T) {
	tab := sampleTable()
	var b bytes.Buffer
	if err := tab.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "**MovieLens, temporal split**\n" +
		"\n" +
		"| model      | recall@10 | ndcg@10 | users |\n" +
		"| ---------- | --------: | ------: | ----: |\n" +
		"| bpr        |    0.1235 |  0.5000 |   610 |\n" +
		"| popularity |    0.1000 |  0.2500 |   610 |\n" +
		"\n" +
		"Command: `visrec eval --split temporal --models bpr,mf`\n"
	if got := b.String(); got != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteCSVGolden(t *testing.T) {
	tab := sampleTable()
	var b bytes.Buffer
	if err := tab.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	want := "model,recall@10,ndcg@10,users\n" +
		"bpr,0.1235,0.5000,610\n" +
		"popularity,0.1000,0.2500,610\n"
	if got := b.String(); got != want {
		t.Errorf("csv:\n%s\nwant:\n%s", got, want)
	}
}

// oddTable has cells with every character that needs escaping in Markdown or CSV.
func oddTable() Table {
	return Table{
		Command: "visrec eval --note 'a `b` c'",
		Columns: []string{"name", "note"},
		Rows: [][]string{
			{"a|b", "x, y"},
			{"line1\nline2", `say "hi"`},
			{`back\slash`, "crlf\r\nend"},
			{"short row"},
		},
	}
}

func TestMarkdownEscapesOddCells(t *testing.T) {
	tab := oddTable()
	var b bytes.Buffer
	if err := tab.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	// Widths count runes of the escaped cells; the widest is "line1<br>line2".
	want := "| name           | note        |\n" +
		"| -------------- | ----------- |\n" +
		"| a\\|b           | x, y        |\n" +
		"| line1<br>line2 | say \"hi\"    |\n" +
		"| back\\\\slash    | crlf<br>end |\n" +
		"| short row      |             |\n" +
		"\n" +
		"Command: `` visrec eval --note 'a `b` c' ``\n"
	if got := b.String(); got != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", got, want)
	}
	// Every table line has exactly columns+1 unescaped pipes.
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if !strings.HasPrefix(l, "|") {
			continue
		}
		if n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|"); n != 3 {
			t.Errorf("line %q has %d cell separators, want 3", l, n)
		}
	}
}

func TestCSVEscapesOddCellsAndRoundTrips(t *testing.T) {
	tab := oddTable()
	var b bytes.Buffer
	if err := tab.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	want := "name,note\n" +
		"a|b,\"x, y\"\n" +
		"\"line1\nline2\",\"say \"\"hi\"\"\"\n" +
		"back\\slash,\"crlf\r\nend\"\n" +
		"short row,\n"
	if got := b.String(); got != want {
		t.Errorf("csv:\n%q\nwant:\n%q", got, want)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantRecs := [][]string{
		{"name", "note"},
		{"a|b", "x, y"},
		{"line1\nline2", `say "hi"`},
		// encoding/csv reads a quoted \r\n back as \n.
		{`back\slash`, "crlf\nend"},
		{"short row", ""},
	}
	if !reflect.DeepEqual(recs, wantRecs) {
		t.Errorf("read back %q, want %q", recs, wantRecs)
	}
}

func TestRowLongerThanColumnsIsAnError(t *testing.T) {
	tab := Table{Columns: []string{"a"}, Rows: [][]string{{"1", "2"}}}
	if err := tab.WriteMarkdown(&bytes.Buffer{}); err == nil {
		t.Error("WriteMarkdown: no error")
	}
	if err := tab.WriteCSV(&bytes.Buffer{}); err == nil {
		t.Error("WriteCSV: no error")
	}
	if err := (&Table{}).WriteCSV(&bytes.Buffer{}); err == nil {
		t.Error("no columns: no error")
	}
}

func TestSaveCSVWritesCommandSidecar(t *testing.T) {
	tab := sampleTable()
	path := filepath.Join(t.TempDir(), "res.csv")
	if err := tab.SaveCSV(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "model,recall@10") {
		t.Errorf("csv starts %q", data)
	}
	cmd, err := os.ReadFile(path + ".cmd")
	if err != nil {
		t.Fatal(err)
	}
	if string(cmd) != tab.Command+"\n" {
		t.Errorf("sidecar %q, want %q", cmd, tab.Command+"\n")
	}
}

func TestFormatCell(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"s", "s"},
		{1.0 / 3, "0.3333"},
		{float32(2.5), "2.5000"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "+Inf"},
		{math.Inf(-1), "-Inf"},
		{42, "42"},
		{int64(-7), "-7"},
		{uint64(9), "9"},
		{1500 * time.Millisecond, "1.500"},
		{true, "true"},
	} {
		if got := FormatCell(tc.in); got != tc.want {
			t.Errorf("FormatCell(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCommandQuotesForTheShell(t *testing.T) {
	got := Command("visrec", "eval", "--data", "../shared/data/ratings.csv", "--note", "it's a test", "", "a b", "k=64")
	want := `visrec eval --data ../shared/data/ratings.csv --note 'it'\''s a test' '' 'a b' k=64`
	if got != want {
		t.Errorf("Command = %s\nwant      %s", got, want)
	}
}

func TestCommandRoundTripsThroughSh(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	args := []string{"printf", "[%s]\\n", "plain", "it's", "a b", "", "$HOME", "`x`", "*", "~", "#c", "a\nb", `back\slash`, "\"q\""}
	out, err := exec.Command(sh, "-c", Command(args...)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, a := range args[2:] {
		want.WriteString("[" + a + "]\n")
	}
	if string(out) != want.String() {
		t.Errorf("sh read %q, want %q", out, want.String())
	}
	if got := Command("A=1", "b=2"); got != "'A=1' b=2" {
		t.Errorf("Command(A=1, b=2) = %s", got)
	}
}
