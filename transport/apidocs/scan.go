package apidocs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// opInString finds "op":"NAME" in a string literal (a frame written as
// bytes, like the event frame's prefix).
var opInString = regexp.MustCompile(`"op"\s*:\s*"([^"]*)"`)

// Source is what the Go source of the transport says about /ws frames.
type Source struct {
	// ServerOps are the ops of the frames the code writes: every
	// composite literal's Op: "NAME" field and every "op":"NAME" in a
	// string literal. Comments do not count.
	ServerOps []string
	// ClientFields are the JSON names of the fields of the struct type
	// named clientType: what a client frame may carry.
	ClientFields []string
}

// ScanSource reads the non-test .go files of dirs.
func ScanSource(clientType string, dirs ...string) (Source, error) {
	var s Source
	fset := token.NewFileSet()
	for _, dir := range dirs {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return s, err
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				return s, err
			}
			if err := s.scan(fset, name, src, clientType); err != nil {
				return s, err
			}
		}
	}
	slices.Sort(s.ServerOps)
	s.ServerOps = slices.Compact(s.ServerOps)
	slices.Sort(s.ClientFields)
	s.ClientFields = slices.Compact(s.ClientFields)
	return s, nil
}

// ScanFile is ScanSource for one file's text.
func ScanFile(name string, src []byte, clientType string) (Source, error) {
	var s Source
	err := s.scan(token.NewFileSet(), name, src, clientType)
	slices.Sort(s.ServerOps)
	s.ServerOps = slices.Compact(s.ServerOps)
	slices.Sort(s.ClientFields)
	return s, err
}

func (s *Source) scan(fset *token.FileSet, name string, src []byte, clientType string) error {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.KeyValueExpr:
			if id, ok := n.Key.(*ast.Ident); ok && id.Name == "Op" {
				if lit, ok := n.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, err := strconv.Unquote(lit.Value); err == nil {
						s.ServerOps = append(s.ServerOps, v)
					}
				}
			}
		case *ast.BasicLit:
			if n.Kind != token.STRING {
				break
			}
			v, err := strconv.Unquote(n.Value)
			if err != nil {
				break
			}
			for _, m := range opInString.FindAllStringSubmatch(v, -1) {
				s.ServerOps = append(s.ServerOps, m[1])
			}
		case *ast.TypeSpec:
			st, ok := n.Type.(*ast.StructType)
			if !ok || n.Name.Name != clientType {
				break
			}
			for _, fl := range st.Fields.List {
				if fl.Tag == nil {
					continue
				}
				tag, err := strconv.Unquote(fl.Tag.Value)
				if err != nil {
					continue
				}
				if j, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ","); j != "" && j != "-" {
					s.ClientFields = append(s.ClientFields, j)
				}
			}
		}
		return true
	})
	return nil
}
