package event

import (
	"strconv"
	"strings"
)

// path names a field for error messages. Paths are built on the stack as the
// scan descends and are only rendered when an error needs them.
type path struct {
	parent *path
	name   string
	index  int // >= 0 for an array element, -1 for a named field
}

// seg is one step of a path below scanner.base.
type seg struct {
	name  string
	index int
}

// here stands for "the metadata path being scanned" (s.base plus the steps
// pushed below it); errors resolve it, so the scan passes it around without
// building a chain.
var here = &path{index: -2}

// resolve turns here into a real path; it allocates, so only errors call it.
func (s *scanner) resolve(p *path) *path {
	if p != here {
		return p
	}
	cur := s.base
	for i := range s.nseg {
		sg := s.step(i)
		cur = &path{parent: cur, name: sg.name, index: sg.index}
	}
	return cur
}

// push adds a step to the metadata path; the caller pops it with s.nseg--.
func (s *scanner) push(sg seg) {
	if s.nseg < len(s.segBuf) {
		s.segBuf[s.nseg] = sg
	} else {
		s.segMore = append(s.segMore[:s.nseg-len(s.segBuf)], sg)
	}
	s.nseg++
}

func (s *scanner) step(i int) seg {
	if i < len(s.segBuf) {
		return s.segBuf[i]
	}
	return s.segMore[i-len(s.segBuf)]
}

func field(parent *path, name string) path { return path{parent: parent, name: name, index: -1} }
func elem(parent *path, i int) path        { return path{parent: parent, index: i} }

var (
	pathOp        = &path{name: "op", index: -1}
	pathID        = &path{name: "id", index: -1}
	pathTenant    = &path{name: "tenant", index: -1}
	pathDocID     = &path{name: "doc_id", index: -1}
	pathText      = &path{name: "text", index: -1}
	pathVector    = &path{name: "vector", index: -1}
	pathMetadata  = &path{name: "metadata", index: -1}
	pathEntities  = &path{name: "entities", index: -1}
	pathRelations = &path{name: "relations", index: -1}
	pathVersion   = &path{name: "version", index: -1}
	pathTS        = &path{name: "ts", index: -1}
)

// String renders the path as entities[2].props.year, quoting names that are
// not plain identifiers: metadata["a b"].
func (p *path) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p *path) write(b *strings.Builder) {
	if p.parent != nil {
		p.parent.write(b)
	}
	switch {
	case p.index >= 0:
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(p.index))
		b.WriteByte(']')
	case plainName(p.name):
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p.name)
	default:
		b.WriteByte('[')
		b.WriteString(strconv.Quote(p.name))
		b.WriteByte(']')
	}
}

func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
