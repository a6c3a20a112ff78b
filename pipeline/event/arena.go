package event

import (
	"math"
	"unsafe"
)

// An event's strings and the boxed numbers and strings of its metadata and
// props share a few allocations instead of taking one each: the decoder's
// largest cost after the scan itself was the allocator and the GC work of
// some fifty small objects per event.
//
// Every block belongs to one DecodeInto call: bytes are only ever appended
// to the current block and never written again once a string or a value
// refers to them, and a block is never reused for another event, since the
// strings escape into the sinks. A block lives as long as any string or
// value of the event refers into it, which is how long the event lives.

// arenaBlock bounds the spare room of a new byte block: it holds the small
// strings of a typical event (ids, labels, keys, short values) in one
// allocation without making every event pay for a large one.
const arenaBlock = 1024

// strSlab is how many string values one block of string headers holds.
const strSlab = 16

// grow starts a new byte block with room for n bytes and, after them, a
// share of what the rest of the value can still need (its remaining bytes
// bound its strings, since decoding only shrinks them).
func (s *scanner) grow(n int) {
	rest := min(len(s.buf)-s.pos, arenaBlock)
	s.arena = make([]byte, 0, n+max(rest, 16))
}

// keep returns b as a string stored in the arena.
func (s *scanner) keep(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if cap(s.arena)-len(s.arena) < len(b) {
		s.grow(len(b))
	}
	off := len(s.arena)
	s.arena = append(s.arena, b...)
	return unsafe.String(&s.arena[off], len(b))
}

// keepUnescaped decodes raw (already checked by str) into the arena. It
// returns the decoded length and, when it is at most limit, the string;
// a string over the limit takes no room.
func (s *scanner) keepUnescaped(raw []byte, limit int) (string, int) {
	if cap(s.arena)-len(s.arena) < len(raw) {
		s.grow(len(raw))
	}
	off := len(s.arena)
	s.arena = appendUnescaped(s.arena, raw) // fits: decoding only shrinks
	n := len(s.arena) - off
	if n == 0 || n > limit {
		s.arena = s.arena[:off]
		return "", n
	}
	return unsafe.String(&s.arena[off], n), n
}

// slot8 returns 8 bytes of the arena, 8-byte aligned, for one boxed number.
func (s *scanner) slot8() unsafe.Pointer {
	off := aligned8(s.arena)
	if off+8 > cap(s.arena) {
		s.grow(8 + 7)
		off = aligned8(s.arena)
	}
	s.arena = s.arena[:off+8]
	return unsafe.Pointer(&s.arena[off])
}

// aligned8 is the first offset at or after len(b) whose address in b's
// backing array is a multiple of 8.
func aligned8(b []byte) int {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return int((base+uintptr(len(b))+7)&^7 - base)
}

// eface is the layout of an empty interface value.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

func typeWord(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	int64Type    = typeWord(int64(0))
	float64Type  = typeWord(float64(0))
	stringType   = typeWord("")
	anySliceType = typeWord([]any(nil))
)

// makeAny builds the interface value of type typ whose value is at data,
// which is what converting a value to any does after copying it to the heap.
// The value at data must never change afterwards.
func makeAny(typ, data unsafe.Pointer) (v any) {
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, data
	return v
}

// boxInt is any(v) with the copy in the arena. The runtime boxes 0…255
// without allocating, so those keep its shared copies.
func (s *scanner) boxInt(v int64) any {
	if v >= 0 && v < 256 {
		return v
	}
	p := s.slot8()
	*(*int64)(p) = v
	return makeAny(int64Type, p)
}

// boxFloat is any(v) with the copy in the arena.
func (s *scanner) boxFloat(v float64) any {
	if math.Float64bits(v) == 0 {
		return v // the runtime boxes a zero word without allocating
	}
	p := s.slot8()
	*(*float64)(p) = v
	return makeAny(float64Type, p)
}

// boxString is any(v) with the string header in a slab of the event.
func (s *scanner) boxString(v string) any {
	if v == "" {
		return v
	}
	if len(s.strs) == cap(s.strs) {
		s.strs = make([]string, 0, strSlab)
	}
	s.strs = append(s.strs, v)
	return makeAny(stringType, unsafe.Pointer(&s.strs[len(s.strs)-1]))
}

// arrayBox holds an array of metadata or props with its first items in one
// allocation: converting the []any to any would otherwise copy its slice
// header to the heap on its own.
type arrayBox struct {
	hdr   []any
	items [4]any
}

// any is any(a) with the slice header in the box; a starts as b.items[:0]
// (append may move it elsewhere when it outgrows them).
func (b *arrayBox) any(a []any) any {
	b.hdr = a
	return makeAny(anySliceType, unsafe.Pointer(&b.hdr))
}
