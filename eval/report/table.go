// Package report writes evaluation results as Markdown tables, CSV files and PNG plots,
// each stamped with the exact command that produced it, and keeps per-run sections of a
// Markdown page (for example docs/results.md) up to date.
//
// Provenance: a Markdown table ends with a "Command:" line, a PNG carries the command as a
// caption under the plot, and a CSV file stays pure RFC 4180 (header row, then data) with
// the command in a sidecar file beside it (SaveCSV writes "<path>.cmd").
//
// Nothing in this package reads os.Args or the environment: callers pass the command
// line in, usually as Command(os.Args...).
package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Table is a titled table of preformatted cells. Rows may be shorter than Columns (missing
// cells are empty); a row longer than Columns is an error when written.
//
// A Table is a plain value; it is not safe for concurrent mutation.
type Table struct {
	Title   string     // shown in bold above the Markdown table; not part of the CSV
	Command string     // the command line that reproduces the table (see Command)
	Columns []string   // header
	Rows    [][]string // cells, already formatted
}

// FloatDigits is the number of digits after the decimal point with which AddRow formats
// float64 and float32 cells.
const FloatDigits = 4

// AddRow appends a row, formatting each cell with FormatCell.
func (t *Table) AddRow(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = FormatCell(c)
	}
	t.Rows = append(t.Rows, row)
}

// FormatCell formats one cell: floats with FloatDigits decimals ("NaN", "+Inf", "-Inf"
// for the special values), integers in decimal, durations in seconds with three decimals,
// strings as they are, fmt.Stringer through String, and anything else with %v.
func FormatCell(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return formatFloat(x)
	case float32:
		return formatFloat(float64(x))
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case time.Duration:
		return strconv.FormatFloat(x.Seconds(), 'f', 3, 64)
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(v)
	}
}

func formatFloat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "+Inf"
	case math.IsInf(x, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(x, 'f', FloatDigits, 64)
}

// check reports a row that has more cells than the table has columns.
func (t *Table) check() error {
	if len(t.Columns) == 0 {
		return fmt.Errorf("report: table %q has no columns", t.Title)
	}
	for i, r := range t.Rows {
		if len(r) > len(t.Columns) {
			return fmt.Errorf("report: table %q row %d has %d cells for %d columns", t.Title, i, len(r), len(t.Columns))
		}
	}
	return nil
}

// cell returns row r's cell c, or "" where the row is short.
func cell(r []string, c int) string {
	if c < len(r) {
		return r[c]
	}
	return ""
}

// WriteMarkdown writes the table as GitHub-flavoured Markdown: the title in bold (if any),
// a blank line, the table with columns padded to a common width, then a blank line and
// "Command: `...`" (if Command is set). Columns whose cells are all numbers are
// right-aligned. In cells, "\" and "|" are backslash-escaped and line breaks become <br>.
func (t *Table) WriteMarkdown(w io.Writer) error {
	if err := t.check(); err != nil {
		return err
	}
	n := len(t.Columns)
	head := make([]string, n)
	body := make([][]string, len(t.Rows))
	width := make([]int, n)
	numeric := make([]bool, n)
	for c := range n {
		head[c] = escapeCell(t.Columns[c])
		width[c] = max(3, utf8.RuneCountInString(head[c]))
		numeric[c] = len(t.Rows) > 0
	}
	for r, row := range t.Rows {
		body[r] = make([]string, n)
		for c := range n {
			s := cell(row, c)
			if !isNumber(s) {
				numeric[c] = false
			}
			body[r][c] = escapeCell(s)
			width[c] = max(width[c], utf8.RuneCountInString(body[r][c]))
		}
	}
	var b strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&b, "**%s**\n\n", strings.Join(strings.Fields(t.Title), " "))
	}
	writeRow(&b, head, width, numeric)
	b.WriteString("|")
	for c := range n {
		if numeric[c] {
			b.WriteString(" " + strings.Repeat("-", width[c]-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", width[c]) + " |")
		}
	}
	b.WriteString("\n")
	for _, row := range body {
		writeRow(&b, row, width, numeric)
	}
	if t.Command != "" {
		fmt.Fprintf(&b, "\nCommand: %s\n", codeSpan(t.Command))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRow(b *strings.Builder, cells []string, width []int, right []bool) {
	b.WriteString("|")
	for c, s := range cells {
		pad := strings.Repeat(" ", width[c]-utf8.RuneCountInString(s))
		if right[c] {
			b.WriteString(" " + pad + s + " |")
		} else {
			b.WriteString(" " + s + pad + " |")
		}
	}
	b.WriteString("\n")
}

// escapeCell makes s safe inside one GFM table cell.
func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", "<br>")
	return strings.TrimSpace(s)
}

// isNumber reports whether s is a number as written by FormatCell (or empty).
func isNumber(s string) bool {
	if s == "" {
		return true
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// codeSpan writes s as a CommonMark code span, fenced by a backtick run longer than any
// inside s, with line breaks turned into spaces.
func codeSpan(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if longest > 0 {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

// WriteCSV writes the header and the rows as RFC 4180 CSV (encoding/csv: quotes where a
// cell holds a comma, a quote, a line break or leading space; "\n" line ends). Short rows
// are padded with empty cells. Neither Title nor Command is written: see SaveCSV.
func (t *Table) WriteCSV(w io.Writer) error {
	if err := t.check(); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(t.Columns); err != nil {
		return err
	}
	rec := make([]string, len(t.Columns))
	for _, row := range t.Rows {
		for c := range rec {
			rec[c] = cell(row, c)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// SaveCSV writes the table to path with WriteCSV and, if Command is set, the command line
// followed by a newline to the sidecar path+".cmd", so the CSV itself stays pure.
func (t *Table) SaveCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := t.WriteCSV(f); err != nil {
		f.Close()
		return fmt.Errorf("report: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if t.Command == "" {
		return nil
	}
	return os.WriteFile(path+".cmd", []byte(t.Command+"\n"), 0o644)
}
