package report

import "strings"

// Command joins args into one line that a POSIX shell reads back as the same arguments:
// an argument made only of safe characters (letters, digits and -_./:=,+@%) stays as it
// is, any other is put in single quotes (a single quote inside is written as quote,
// backslash, quote, quote: it closes the quoting, adds an escaped quote and reopens).
// A first argument with "=" is quoted too. Pass os.Args, or a command the reader should type, e.g.
// Command("go", "run", "./cmd/visrec", "eval").
func Command(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
		if i == 0 && q[i] == a && strings.Contains(a, "=") {
			q[i] = "'" + a + "'" // else the shell reads an assignment
		}
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
