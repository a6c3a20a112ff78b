package qdranttest

import (
	"bytes"
	"strconv"

	"github.com/google/uuid"
	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pointKey is a parsed point id. Qdrant keeps the two id kinds apart: the
// number 1 and the UUID 00000000-0000-0000-0000-000000000001 are different
// points, and every numeric id sorts before every UUID.
type pointKey struct {
	isUUID bool
	num    uint64
	u      [16]byte
}

// parsePointID converts a wire id, with the messages of Qdrant's gRPC
// conversion layer (lib/api/src/grpc/conversions.rs).
func parsePointID(id *qdrant.PointId) (pointKey, error) {
	if id == nil || id.GetPointIdOptions() == nil {
		return pointKey{}, status.Error(codes.InvalidArgument, "Empty ID is not allowed")
	}
	switch v := id.GetPointIdOptions().(type) {
	case *qdrant.PointId_Num:
		return pointKey{num: v.Num}, nil
	case *qdrant.PointId_Uuid:
		u, err := uuid.Parse(v.Uuid)
		if err != nil {
			return pointKey{}, status.Errorf(codes.InvalidArgument, "Unable to parse UUID: %s", v.Uuid)
		}
		return pointKey{isUUID: true, u: u}, nil
	}
	return pointKey{}, status.Error(codes.InvalidArgument, "Empty ID is not allowed")
}

// less orders ids as Qdrant's ExtendedPointId does: numbers first, by value,
// then UUIDs by their 128-bit value.
func (k pointKey) less(o pointKey) bool {
	if k.isUUID != o.isUUID {
		return !k.isUUID
	}
	if !k.isUUID {
		return k.num < o.num
	}
	return bytes.Compare(k.u[:], o.u[:]) < 0
}

func (k pointKey) compare(o pointKey) int {
	switch {
	case k.less(o):
		return -1
	case o.less(k):
		return 1
	}
	return 0
}

// proto returns the id as Qdrant answers it: UUIDs lowercase and hyphenated.
func (k pointKey) proto() *qdrant.PointId {
	if k.isUUID {
		return qdrant.NewIDUUID(uuid.UUID(k.u).String())
	}
	return qdrant.NewIDNum(k.num)
}

// String formats the id for error messages.
func (k pointKey) String() string {
	if k.isUUID {
		return uuid.UUID(k.u).String()
	}
	return strconv.FormatUint(k.num, 10)
}

// keyFromAny converts the ids tests hand to the fault injector: an unsigned
// or signed integer, a UUID string, or a *qdrant.PointId.
func keyFromAny(v any) (pointKey, bool) {
	switch x := v.(type) {
	case *qdrant.PointId:
		k, err := parsePointID(x)
		return k, err == nil
	case uint64:
		return pointKey{num: x}, true
	case uint:
		return pointKey{num: uint64(x)}, true
	case int:
		if x < 0 {
			return pointKey{}, false
		}
		return pointKey{num: uint64(x)}, true
	case int64:
		if x < 0 {
			return pointKey{}, false
		}
		return pointKey{num: uint64(x)}, true
	case string:
		u, err := uuid.Parse(x)
		if err != nil {
			return pointKey{}, false
		}
		return pointKey{isUUID: true, u: u}, true
	case [16]byte:
		return pointKey{isUUID: true, u: x}, true
	}
	return pointKey{}, false
}
