package event

import (
	"encoding/binary"
	"math"
	"math/bits"
	"unsafe"
)

// vector scans the vector array. Elements beyond Dims are checked but not
// kept; check reports the length. fastElements takes the elements every
// unit vector is made of; everything else (other spellings, whitespace,
// other kinds, errors) takes the general path, one element at a time.
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
			var closed bool
			if i, n, closed = fastElements(b, i, vec, n); closed {
				s.pos = i
				break
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

// fastElements takes the elements every unit vector is made of,
// -?0.ddddddd followed at once by ',' or ']', from b[i] on into vec[n:],
// and returns where it stopped: at the first element it does not take, when
// vec is full, or after ']' (closed is true then).
//
// It reads b through a pointer that stays at least 16 bytes before the end
// of b, enough for the longest element it takes ("-0." and 7 digits and the
// delimiter, read as "-" or not, then 2 and 8 bytes): the bounds checks of
// variable offsets, and the spills they caused, were a third of the loop.
func fastElements(b []byte, i int, vec []float32, n int) (next, filled int, closed bool) {
	if len(b)-i < 16 {
		return i, n, false
	}
	start := unsafe.Pointer(&b[i])
	last := uintptr(unsafe.Pointer(unsafe.SliceData(b))) + uintptr(len(b)-16)
	p := start
	out := vec[min(n, len(vec)):]
	m := 0
	for m < len(out) && uintptr(p) <= last {
		neg := 0
		if *(*byte)(p) == '-' {
			neg = 1
		}
		q := unsafe.Add(p, neg)
		if binary.LittleEndian.Uint16((*[2]byte)(q)[:]) != '0'|'.'<<8 {
			break
		}
		w := binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(q, 2))[:])
		// Digit bytes become 0…9; the first other byte gets its top bit
		// set (bytes after it may too, through a carry, and do not count).
		t := w ^ 0x3030303030303030
		k := bits.TrailingZeros64(((t+0x7676767676767676)|t)&0x8080808080808080) >> 3
		if uint(k-1) >= 7 { // no digit, or 8 of them
			break
		}
		c := byte(w >> (8 * uint(k)))
		if c != ',' && c != ']' {
			break
		}
		d := digitsValue(t << (64 - 8*uint(k)))
		// d < 10^7 < 2^24 and 10^k are exact in float32, so one division
		// rounds correctly.
		f := float32(int64(d)) / pow10f32[k&7]
		out[m] = math.Float32frombits(math.Float32bits(f) | uint32(neg)<<31)
		m++
		p = unsafe.Add(p, neg+k+3)
		if c == ']' {
			closed = true
			break
		}
	}
	return i + int(uintptr(p)-uintptr(start)), n + m, closed
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
