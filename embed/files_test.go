package embed

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestListImagesOrder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"10.jpg", "2.jpg", "1.jpg", "b.png", "a.png", ".hidden.jpg", "100.jpg"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := ListImages([]string{dir, "files_test.go"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	want := []string{"1.jpg", "2.jpg", "10.jpg", "100.jpg", "a.png", "b.png", "files_test.go"}
	if !slices.Equal(got, want) {
		t.Fatalf("ListImages = %v, want %v", got, want)
	}
	if _, err := ListImages([]string{filepath.Join(dir, "nope")}); err == nil {
		t.Fatal("missing path: no error")
	}
}

func TestItemID(t *testing.T) {
	for in, want := range map[string]string{"posters/1234.jpg": "1234", "a.b.png": "a.b", "noext": "noext", "/x/.jpg": ""} {
		if got := ItemID(in); got != want {
			t.Errorf("ItemID(%q) = %q, want %q", in, got, want)
		}
	}
	if checkID("") == nil || checkID("a\nb") == nil || checkID(strings.Repeat("x", 300)) == nil || checkID("1234") != nil {
		t.Error("checkID accepts or rejects the wrong ids")
	}
}
