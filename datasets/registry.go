package datasets

import (
	"fmt"
	"strings"
)

// Archive is a public data set archive that Download knows.
type Archive struct {
	Name string // what users type, e.g. "ml-100k"
	File string // file name under the base URL, e.g. "ml-100k.zip"
	Root string // the folder the zip unpacks into
	// SHA256 and MD5 are the expected digests in hex; Download verifies every one that is
	// set, and a mismatch is an error.
	SHA256, MD5 string
	// Checked is true when the digests are the publisher's (GroupLens' .md5 files, as
	// quoted by several independent sources); false marks an entry to verify.
	Checked bool
	About   string
}

// DefaultBaseURL is where GroupLens publishes the MovieLens archives.
const DefaultBaseURL = "https://files.grouplens.org/datasets/movielens/"

// archives is the registry; a constant table.
//
// The MD5s of ml-100k, ml-1m, ml-10m, ml-20m and ml-25m are those of GroupLens' published
// .md5 files. ml-latest-small is a "development" data set that GroupLens may regenerate;
// its SHA-256 comes from a single third-party record of a download, not from GroupLens:
// FILL IN / VERIFY it (sha256sum ml-latest-small.zip) before relying on it, and override it
// with DownloadOptions.SHA256 when GroupLens has published a new version.
var archives = [...]Archive{
	{Name: "ml-latest-small", File: "ml-latest-small.zip", Root: "ml-latest-small",
		SHA256: "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", Checked: false,
		About: "100,836 ratings and 3,683 tags of 9,742 movies by 610 users (about 1 MB; ratings.csv)"},
	{Name: "ml-100k", File: "ml-100k.zip", Root: "ml-100k", MD5: "0e33842e24a9c977be4e0107933c0723", Checked: true,
		About: "100,000 ratings of 1,682 movies by 943 users, 1998 (about 5 MB; u.data)"},
	{Name: "ml-1m", File: "ml-1m.zip", Root: "ml-1m", MD5: "c4d9eecfca2ab87c1945afe126590906", Checked: true,
		About: "1,000,209 ratings of 3,706 movies by 6,040 users, 2003 (about 6 MB; ratings.dat)"},
	{Name: "ml-10m", File: "ml-10m.zip", Root: "ml-10M100K", MD5: "ce571fd55effeba0271552578f2648bd", Checked: true,
		About: "10,000,054 ratings of 10,681 movies by 71,567 users, 2009 (about 63 MB; ratings.dat)"},
	{Name: "ml-20m", File: "ml-20m.zip", Root: "ml-20m", MD5: "cd245b17a1ae2cc31bb14903e1204af3", Checked: true,
		About: "20,000,263 ratings of 27,278 movies by 138,493 users, 2015 (about 190 MB; ratings.csv)"},
	{Name: "ml-25m", File: "ml-25m.zip", Root: "ml-25m", MD5: "6b51fb2759a8657d3bfcbfc42b592ada", Checked: true,
		About: "25,000,095 ratings of 62,423 movies by 162,541 users, 2019 (about 250 MB; ratings.csv)"},
}

// Archives lists the registry.
func Archives() []Archive { return append([]Archive(nil), archives[:]...) }

// LookupArchive finds an archive by name (case-insensitive; "ml-" may be left out).
func LookupArchive(name string) (Archive, error) {
	for _, a := range archives {
		if strings.EqualFold(name, a.Name) || strings.EqualFold("ml-"+name, a.Name) {
			return a, nil
		}
	}
	names := make([]string, len(archives))
	for i, a := range archives {
		names[i] = a.Name
	}
	return Archive{}, fmt.Errorf("unknown data set %q: want one of %s", name, strings.Join(names, ", "))
}
