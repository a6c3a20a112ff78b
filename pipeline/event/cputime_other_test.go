//go:build !unix

package event_test

import "time"

// cpuTime is unknown here; the records/cpu-s metric is then left out.
func cpuTime() time.Duration { return 0 }
