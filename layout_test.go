package rampart_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageComments asserts every package has a package comment
// (DESIGN.md "Tests"), and that no package is named util/common/helpers/models/types.
func TestPackageComments(t *testing.T) {
	dirs := map[string]bool{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "." || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			dirs[filepath.Dir(p)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	banned := map[string]bool{"util": true, "utils": true, "common": true, "helpers": true, "models": true, "types": true}
	for dir := range dirs {
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for name, pkg := range pkgs {
			if banned[name] {
				t.Errorf("%s: package name %q says nothing about what it owns", dir, name)
			}
			has := false
			for _, f := range pkg.Files {
				if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
					has = true
				}
			}
			if !has {
				t.Errorf("%s: package %s has no package comment", dir, name)
			}
		}
	}
	if len(dirs) < 10 {
		t.Fatalf("found only %d packages", len(dirs))
	}
}
