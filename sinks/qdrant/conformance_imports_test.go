package qdrant_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestConformanceSuiteReachesTargetOnlyByAddress guards the suite's
// promise: its cases talk to the target only through the go-client and an
// address, so they run unchanged against a real Qdrant. Of the stand-in
// they may use only the target switch (qdranttest.Target, which starts one
// when no real Qdrant is named), and no other package of ours. The fault
// cases are the one exception, and they start their own stand-in.
func TestConformanceSuiteReachesTargetOnlyByAddress(t *testing.T) {
	const standIn = "github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
	files, err := filepath.Glob("conformance*_test.go")
	if err != nil || len(files) < 5 {
		t.Fatalf("suite files %v, %v", files, err)
	}
	allowed := map[string]map[string]bool{
		"conformance_faults_test.go": {"Start": true, "Server": true},
	}
	for _, f := range files {
		if f == "conformance_imports_test.go" {
			continue
		}
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		local := ""
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, "github.com/ragstream/") {
				continue
			}
			if p != standIn {
				t.Errorf("%s imports %s: the suite may only use the stand-in's target switch", f, p)
				continue
			}
			local = "qdranttest"
			if imp.Name != nil {
				local = imp.Name.Name
			}
		}
		ok := allowed[f]
		if ok == nil {
			ok = map[string]bool{"Target": true}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			sel, isSel := n.(*ast.SelectorExpr)
			if !isSel {
				return true
			}
			if x, isIdent := sel.X.(*ast.Ident); isIdent && local != "" && x.Name == local && !ok[sel.Sel.Name] {
				t.Errorf("%s: uses qdranttest.%s; the suite may reach the stand-in only through qdranttest.Target and an address", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}
