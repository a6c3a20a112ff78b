package event

// Free-form values: metadata (any JSON, nesting bounded) and the props of
// entities and relations (what a Neo4j property can hold).

// objectKey reads a key of a metadata or props object and checks its size.
func (s *scanner) objectKey(p *path) (string, *Error) {
	k, err := s.key(p)
	if err != nil {
		return "", err
	}
	switch {
	case len(k) == 0:
		s.violate(p, "empty key")
	case len(k) > s.lim.MaxKeyBytes:
		s.violate(p, "key too long (%d bytes, max %d)", len(k), s.lim.MaxKeyBytes)
	}
	return s.keep(k), nil
}

// number reads a number of metadata or props: int64 for an integer literal,
// float64 otherwise.
func (s *scanner) numberVal(p *path) (any, *Error) {
	lit, err := s.number(p)
	if err != nil {
		return nil, err
	}
	if lit.isInt {
		if v, ok := s.int64(lit); ok {
			return s.boxInt(v), nil
		}
		s.violate(p, "integer out of int64 range")
		return nil, nil
	}
	v, ok := s.float64(lit)
	if !ok {
		s.violate(p, "number out of float64 range (must be finite)")
		return nil, nil
	}
	return s.boxFloat(v), nil
}

// scalar reads a string, number, boolean or null.
func (s *scanner) scalar(p *path) (any, *Error) {
	switch s.kindAt() {
	case "string":
		v, _, err := s.stringVal(p, s.lim.MaxStringBytes, false)
		return s.boxString(v), err
	case "number":
		return s.numberVal(p)
	case "boolean", "null":
		c, err := s.literal(p)
		switch c {
		case 't':
			return true, err
		case 'f':
			return false, err
		}
		return nil, err
	}
	return nil, s.unexpected(p, "a value")
}

// Metadata recurses, and Go's escape analysis moves a path chain built on the
// stack of a recursive function to the heap. So metadata keeps its path in
// steps below s.base (see push) and passes the sentinel here, which errors resolve.

// metaObject reads an object inside metadata at the given depth (metadata
// itself is depth 1); its path is s.base plus the pushed steps.
func (s *scanner) metaObject(depth int) (map[string]any, *Error) {
	m := make(map[string]any)
	if s.open('}') {
		return m, nil
	}
	n := 0
	for {
		k, err := s.objectKey(here)
		if err != nil {
			return nil, err
		}
		s.push(seg{name: k, index: -1})
		n++
		_, dup := m[k]
		switch {
		case dup:
			s.violate(here, "duplicate key")
			err = s.skip(here)
		case n > s.lim.MaxMetadataKeys:
			err = s.skip(here)
		default:
			var v any
			v, err = s.metaValue(depth)
			m[k] = v
		}
		s.nseg--
		if err != nil {
			return nil, err
		}
		more, err := s.next(here, '}')
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if n > s.lim.MaxMetadataKeys {
		s.violate(here, "too many keys (%d, max %d)", n, s.lim.MaxMetadataKeys)
	}
	return m, nil
}

// metaValue reads a value held by a container at depth.
func (s *scanner) metaValue(depth int) (any, *Error) {
	switch s.kindAt() {
	case "object", "array":
		if depth >= s.lim.MaxDepth {
			s.violate(here, "nested deeper than %d levels", s.lim.MaxDepth)
			return nil, s.skip(here)
		}
		if s.buf[s.pos] == '{' {
			return s.metaObject(depth + 1)
		}
		return s.metaArray(depth + 1)
	}
	return s.scalar(here)
}

func (s *scanner) metaArray(depth int) (any, *Error) {
	box := new(arrayBox)
	a := box.items[:0]
	if s.open(']') {
		return box.any(a), nil
	}
	n := 0
	for {
		s.push(seg{index: n})
		n++
		var err *Error
		if n > s.lim.MaxArrayItems {
			err = s.skip(here)
		} else {
			var v any
			v, err = s.metaValue(depth)
			a = append(a, v)
		}
		s.nseg--
		if err != nil {
			return nil, err
		}
		more, err := s.next(here, ']')
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if n > s.lim.MaxArrayItems {
		s.violate(here, "too many items (%d, max %d)", n, s.lim.MaxArrayItems)
	}
	return box.any(a), nil
}

// props reads the props of an entity or relation: every value a scalar or
// an array of scalars of one kind, since Neo4j stores nothing else.
func (s *scanner) props(p *path) (map[string]any, *Error) {
	m := make(map[string]any)
	if s.open('}') {
		return m, nil
	}
	n := 0
	for {
		k, err := s.objectKey(p)
		if err != nil {
			return nil, err
		}
		kp := field(p, k)
		n++
		_, dup := m[k]
		switch {
		case dup:
			s.violate(&kp, "duplicate key")
			err = s.skip(&kp)
		case n > s.lim.MaxPropsKeys:
			err = s.skip(&kp)
		default:
			var v any
			switch s.kindAt() {
			case "object":
				s.violate(&kp, "must be a scalar or an array of scalars (Neo4j cannot store a map)")
				err = s.skip(&kp)
			case "array":
				v, err = s.propArray(&kp)
			default:
				v, err = s.scalar(&kp)
			}
			m[k] = v
		}
		if err != nil {
			return nil, err
		}
		more, err := s.next(p, '}')
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if n > s.lim.MaxPropsKeys {
		s.violate(p, "too many keys (%d, max %d)", n, s.lim.MaxPropsKeys)
	}
	return m, nil
}

// propArray reads an array property: strings, numbers or booleans, one kind
// throughout, no null. Integers mixed with other numbers become float64.
func (s *scanner) propArray(p *path) (any, *Error) {
	box := new(arrayBox)
	a := box.items[:0]
	if s.open(']') {
		return box.any(a), nil
	}
	first := ""
	allInt := true
	n := 0
	for {
		ep := elem(p, n)
		n++
		kind := s.kindAt()
		var err *Error
		switch {
		case kind == "":
			return nil, s.unexpected(&ep, "a value")
		case kind == "null":
			s.violate(&ep, "null is not allowed in an array (Neo4j cannot store it)")
			err = s.skip(&ep)
		case kind == "object" || kind == "array":
			s.violate(&ep, "must be a scalar (Neo4j cannot store nested arrays or maps)")
			err = s.skip(&ep)
		case first != "" && kind != first:
			s.violate(&ep, "must be a %s like the first item (a Neo4j array holds one type)", first)
			err = s.skip(&ep)
		case n > s.lim.MaxArrayItems:
			err = s.skip(&ep)
		default:
			first = kind
			var v any
			v, err = s.scalar(&ep)
			if _, isInt := v.(int64); kind == "number" && !isInt {
				allInt = false
			}
			a = append(a, v)
		}
		if err != nil {
			return nil, err
		}
		more, err := s.next(p, ']')
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if n > s.lim.MaxArrayItems {
		s.violate(p, "too many items (%d, max %d)", n, s.lim.MaxArrayItems)
	}
	if first == "number" && !allInt {
		for i, v := range a {
			if x, ok := v.(int64); ok {
				a[i] = s.boxFloat(float64(x))
			}
		}
	}
	return box.any(a), nil
}
