//go:build long

package e2e

import "testing"

// TestCustomHTTPMemoryLong is the figure: 20 concurrent 300 MB
// requests without a token, then 20 with it declaring their length, then 20
// with it chunked, against the shipped HTTP pipeline; its peak memory stays
// under 150 MB (go test -tags long ./e2e -run MemoryLong). Only the
// chunked ones send much: the others are refused from their headers.
func TestCustomHTTPMemoryLong(t *testing.T) {
	checkOversizeMemory(t, 300<<20, "30s")
}
