package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AppendSection replaces the section "## heading" of the Markdown file at path with
// markdown, or appends it at the end of the file if there is no such section; the file is
// created if it does not exist. A section runs from its heading line to the next level-1
// or level-2 ATX heading ("# ..." or "## ...") or the end of the file; headings inside
// fenced code blocks do not count. Everything outside the section is kept byte for byte,
// and calling it again with the same arguments leaves the file unchanged. If the heading
// appears more than once, the first occurrence is replaced.
//
// The heading must be one non-empty line. markdown must not itself contain a level-1 or
// level-2 ATX heading (use ### and deeper), since that would end the section on the next
// update; leading blank lines and trailing white space of markdown are dropped.
//
// The file is replaced atomically (a temporary file in the same folder, then rename), so
// a reader never sees half a file; concurrent writers of one file are not coordinated.
func AppendSection(path, heading, markdown string) error {
	heading = strings.TrimSpace(heading)
	section, err := sectionText(heading, markdown)
	if err != nil {
		return err
	}

	old, err := os.ReadFile(path)
	mode := fs.FileMode(0o644)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
	}
	doc, err := replaceSection(string(old), heading, section)
	if err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	return writeAtomic(path, []byte(doc), mode)
}

// sectionText checks heading (already trimmed) and markdown and returns the section:
// the heading line, a blank line and the body, ending in a newline.
func sectionText(heading, markdown string) (string, error) {
	if heading == "" || strings.ContainsAny(heading, "\r\n") {
		return "", fmt.Errorf("report: section heading %q must be one non-empty line", heading)
	}
	if text, lvl := atxHeading("## " + heading); lvl != 2 || text != heading {
		return "", fmt.Errorf("report: section heading %q does not read back as itself in \"## %s\"", heading, heading)
	}
	body := strings.TrimRight(strings.TrimLeft(markdown, "\r\n"), " \t\r\n")
	lines := splitLines(body)
	if fenceState(lines) != "" {
		return "", fmt.Errorf("report: section %q body ends inside a code fence", heading)
	}
	for _, l := range outsideFences(lines) {
		if _, lvl := atxHeading(l); lvl == 1 || lvl == 2 {
			return "", fmt.Errorf("report: section %q body has a level-%d heading %q; use ### or deeper", heading, lvl, strings.TrimSpace(l))
		}
	}
	section := "## " + heading + "\n"
	if body != "" {
		section += "\n" + body + "\n"
	}
	return section, nil
}

// replaceSection returns doc with the section titled heading replaced by section (which
// ends in a newline), or with section appended after one blank line. It fails only when
// the section must be appended to a document that ends inside an unclosed code fence,
// where the new heading would not be a heading.
func replaceSection(doc, heading, section string) (string, error) {
	lines := splitLines(doc)
	inside := insideFenceMask(lines)
	start := -1
	for i, l := range lines {
		if text, lvl := atxHeading(l); !inside[i] && lvl == 2 && text == heading {
			start = i
			break
		}
	}
	if start < 0 {
		if fenceState(lines) != "" {
			return "", fmt.Errorf("cannot append section %q: the document ends inside an unclosed code fence", heading)
		}
		before := strings.TrimRight(doc, " \t\r\n")
		if before == "" {
			return section, nil
		}
		return before + "\n\n" + section, nil
	}
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		if _, lvl := atxHeading(lines[i]); !inside[i] && (lvl == 1 || lvl == 2) {
			end = i
			break
		}
	}
	var b strings.Builder
	for _, l := range lines[:start] {
		b.WriteString(l)
	}
	b.WriteString(section)
	if end < len(lines) {
		b.WriteString("\n")
		for _, l := range lines[end:] {
			b.WriteString(l)
		}
	}
	return b.String(), nil
}

// splitLines splits s after each "\n", keeping the line ends.
func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// atxHeading returns the text and level (1-6) of an ATX heading line, or level 0.
func atxHeading(line string) (string, int) {
	l := strings.TrimRight(line, "\r\n")
	trimmed := strings.TrimLeft(l, " ")
	if len(l)-len(trimmed) > 3 {
		return "", 0
	}
	lvl := 0
	for lvl < len(trimmed) && trimmed[lvl] == '#' {
		lvl++
	}
	if lvl == 0 || lvl > 6 {
		return "", 0
	}
	rest := trimmed[lvl:]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return "", 0
	}
	rest = strings.TrimSpace(rest)
	// An optional closing sequence of #s, preceded by a space, is not part of the text.
	if t := strings.TrimRight(rest, "#"); t != rest && (t == "" || strings.HasSuffix(t, " ") || strings.HasSuffix(t, "\t")) {
		rest = strings.TrimSpace(t)
	}
	return rest, lvl
}

// insideFenceMask marks the lines that are inside (or open or close) a fenced code block.
func insideFenceMask(lines []string) []bool {
	mask, _ := scanFences(lines)
	return mask
}

// fenceState returns the opening run of the fence still open after lines, or "".
func fenceState(lines []string) string {
	_, open := scanFences(lines)
	return open
}

// scanFences marks the lines of fenced code blocks and returns the fence left open.
func scanFences(lines []string) ([]bool, string) {
	mask := make([]bool, len(lines))
	var fence string // the opening run of ` or ~, "" outside
	for i, line := range lines {
		l := strings.TrimRight(line, "\r\n")
		t := strings.TrimLeft(l, " ")
		if len(l)-len(t) <= 3 && (strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~")) {
			run := t[:len(t)-len(strings.TrimLeft(t, t[:1]))]
			switch {
			case fence == "":
				fence = run
				mask[i] = true
				continue
			case run[0] == fence[0] && len(run) >= len(fence) && strings.TrimSpace(t[len(run):]) == "":
				fence = ""
				mask[i] = true
				continue
			}
		}
		mask[i] = fence != ""
	}
	return mask, fence
}

// outsideFences returns the lines that are not part of a fenced code block.
func outsideFences(lines []string) []string {
	mask := insideFenceMask(lines)
	var out []string
	for i, l := range lines {
		if !mask[i] {
			out = append(out, l)
		}
	}
	return out
}

// writeAtomic writes data to a temporary file beside path and renames it over path.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}
