package event

// Entities and relations: the graph half of an event.

// entities scans the entities array.
func (s *scanner) entities(ev *Event) *Error {
	ents := ev.Entities[:0]
	if ents == nil {
		ents = make([]Entity, 0, 4)
	}
	n := 0
	if !s.open(']') {
		for {
			p := elem(pathEntities, n)
			var err *Error
			switch {
			case s.kindAt() != "object":
				err = s.mismatch(&p, "an object")
			case n < s.lim.MaxEntities:
				ents = append(ents, Entity{})
				err = s.entity(&p, &ents[len(ents)-1])
			default:
				err = s.skip(&p)
			}
			if err != nil {
				return err
			}
			n++
			more, err := s.next(pathEntities, ']')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	if n > s.lim.MaxEntities {
		s.violate(pathEntities, "too many items (%d, max %d)", n, s.lim.MaxEntities)
	}
	ev.Entities = ents
	return nil
}

func (s *scanner) entity(p *path, e *Entity) *Error {
	const fEID, fEType, fEName, fEProps = 1, 2, 4, 8
	var seen uint8
	if !s.open('}') {
		for {
			k, err := s.key(p)
			if err != nil {
				return err
			}
			var f uint8
			var name string
			switch string(k) {
			case "id":
				f, name = fEID, "id"
			case "type":
				f, name = fEType, "type"
			case "name":
				f, name = fEName, "name"
			case "props":
				f, name = fEProps, "props"
			}
			fp := field(p, name)
			switch {
			case f == 0:
				s.violate(p, "unknown field %q", k)
				err = s.skip(p)
			case seen&f != 0:
				s.violate(&fp, "duplicate key")
				err = s.skip(&fp)
			default:
				seen |= f
				switch f {
				case fEID:
					e.ID, _, err = s.nonEmpty(&fp, s.lim.MaxIDBytes, false)
				case fEType:
					e.Type, err = s.label(&fp)
				case fEName:
					e.Name, _, err = s.nonEmpty(&fp, s.lim.MaxStringBytes, false)
				case fEProps:
					e.Props, err = s.propsOrNull(&fp)
				}
			}
			if err != nil {
				return err
			}
			more, err := s.next(p, '}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	for _, r := range [...]struct {
		f    uint8
		name string
	}{{fEID, "id"}, {fEType, "type"}, {fEName, "name"}} {
		if seen&r.f == 0 {
			fp := field(p, r.name)
			s.violate(&fp, "required")
		}
	}
	return nil
}

// label reads an entity or relation type.
func (s *scanner) label(p *path) (string, *Error) {
	b, ok, err := s.strValBytes(p, false)
	if !ok {
		return "", err
	}
	if !labelOK(b) {
		s.violate(p, "must match %s", LabelPattern)
		return "", nil
	}
	return s.keep(b), nil
}

func (s *scanner) propsOrNull(p *path) (map[string]any, *Error) {
	switch s.kindAt() {
	case "object":
		return s.props(p)
	case "null":
		_, err := s.literal(p)
		return nil, err
	}
	return nil, s.mismatch(p, "an object")
}

// relations scans the relations array.
func (s *scanner) relations(ev *Event) *Error {
	rels := ev.Relations[:0]
	if rels == nil {
		rels = make([]Relation, 0, 4)
	}
	n := 0
	if !s.open(']') {
		for {
			p := elem(pathRelations, n)
			var err *Error
			switch {
			case s.kindAt() != "object":
				err = s.mismatch(&p, "an object")
			case n < s.lim.MaxRelations:
				rels = append(rels, Relation{})
				err = s.relation(&p, &rels[len(rels)-1])
			default:
				err = s.skip(&p)
			}
			if err != nil {
				return err
			}
			n++
			more, err := s.next(pathRelations, ']')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	if n > s.lim.MaxRelations {
		s.violate(pathRelations, "too many items (%d, max %d)", n, s.lim.MaxRelations)
	}
	ev.Relations = rels
	return nil
}

func (s *scanner) relation(p *path, r *Relation) *Error {
	const fRFrom, fRTo, fRType, fRProps = 1, 2, 4, 8
	var seen uint8
	if !s.open('}') {
		for {
			k, err := s.key(p)
			if err != nil {
				return err
			}
			var f uint8
			var name string
			switch string(k) {
			case "from":
				f, name = fRFrom, "from"
			case "to":
				f, name = fRTo, "to"
			case "type":
				f, name = fRType, "type"
			case "props":
				f, name = fRProps, "props"
			}
			fp := field(p, name)
			switch {
			case f == 0:
				s.violate(p, "unknown field %q", k)
				err = s.skip(p)
			case seen&f != 0:
				s.violate(&fp, "duplicate key")
				err = s.skip(&fp)
			default:
				seen |= f
				switch f {
				case fRFrom:
					r.From, _, err = s.nonEmpty(&fp, s.lim.MaxIDBytes, false)
				case fRTo:
					r.To, _, err = s.nonEmpty(&fp, s.lim.MaxIDBytes, false)
				case fRType:
					r.Type, err = s.label(&fp)
				case fRProps:
					r.Props, err = s.propsOrNull(&fp)
				}
			}
			if err != nil {
				return err
			}
			more, err := s.next(p, '}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	for _, x := range [...]struct {
		f    uint8
		name string
	}{{fRFrom, "from"}, {fRTo, "to"}, {fRType, "type"}} {
		if seen&x.f == 0 {
			fp := field(p, x.name)
			s.violate(&fp, "required")
		}
	}
	return nil
}
