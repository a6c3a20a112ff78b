package event

import (
	"encoding/binary"
	"math"
)

// vector scans the vector array. Elements beyond Dims are checked but not
// kept; check reports the length. The loop's fast path takes the element
// every unit vector is made of, -?0.ddddddd followed at once by ',' or ']',
// in a handful of word operations; everything else (other spellings,
// whitespace, other kinds, errors) takes the general path.
func (s *scanner) vector(ev *Event) *Error {
	dims := s.lim.Dims
	vec := ev.Vector[:0]
	if cap(vec) < dims {
		vec = make([]float32, 0, dims)
	}
	vec = vec[:dims]
	n := 0
	if !s.open(']') {
		b := s.buf
		i := s.pos
		for {
			if i+16 <= len(b) {
				w := b[i : i+16]
				j := 0
				if w[0] == '-' {
					j = 1
				}
				if w[j] == '0' && w[j+1] == '.' {
					k, d := digits8(binary.LittleEndian.Uint64(w[j+2 : j+10]))
					if k > 0 && k < 8 {
						if c := w[j+2+k]; c == ',' || c == ']' {
							// d < 10^7 < 2^24 and 10^k are exact in float32,
							// so one division rounds correctly.
							f := float32(int64(d)) / pow10f32[k]
							f = math.Float32frombits(math.Float32bits(f) | uint32(j)<<31)
							if n < len(vec) {
								vec[n] = f
							}
							n++
							i += j + k + 3
							if c == ',' {
								continue
							}
							s.pos = i
							break
						}
					}
				}
			}
			s.pos = i
			s.ws()
			f, end, ok := fastFloat32(b, s.pos)
			if ok {
				s.pos = end
			} else if f, ok = s.element(n); !ok {
				return s.elemErr
			}
			if n < len(vec) {
				vec[n] = f
			}
			n++
			more, err := s.next(pathVector, ']')
			if err != nil {
				return err
			}
			if !more {
				break
			}
			i = s.pos
		}
	}
	ev.Vector = vec[:min(n, dims)]
	s.vecLen = n
	return nil
}

// element is the general path for vector element n, for what fastFloat32
// leaves: other spellings, other kinds, syntax errors. ok is false when
// s.elemErr holds a decode error.
func (s *scanner) element(n int) (f float32, ok bool) {
	p := elem(pathVector, n)
	if s.pos < len(s.buf) && (s.buf[s.pos] == '-' || s.buf[s.pos]-'0' <= 9) {
		lit, err := s.number(&p)
		if err != nil {
			s.elemErr = err
			return 0, false
		}
		if f, ok = s.float32(lit); !ok {
			s.violate(&p, "out of float32 range (must be finite)")
		}
		return f, true
	}
	if err := s.mismatch(&p, "a number"); err != nil {
		s.elemErr = err
		return 0, false
	}
	return 0, true
}
