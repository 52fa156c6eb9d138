package deadletter

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestFileOutputEndsAFragmentItCannotTakeBack: a cut write is taken back
// only while the file ends with it; when another process appended after it,
// truncating would cut that process's lines, so the fragment stays and the
// next line starts with a newline, ending the fragment's line. (The cut
// write itself, on a real file size limit, is TestDeadLetterFileFullThenFreed
// in e2e.)
func TestFileOutputEndsAFragmentItCannotTakeBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dead-letter.jsonl")
	o := &fileOutput{path: path}
	ctx := context.Background()
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	if err := o.Write(ctx, service.NewMessage([]byte(`{"a":1}`))); err != nil {
		t.Fatal(err)
	}
	// As a cut write of 4 bytes at offset 8 leaves it, then another process's line.
	if _, err := o.file.Write([]byte(`{"b"` + `{"other":1}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if o.takeBack(8, 4) {
		t.Fatal("a cut write with another process's line after it was taken back")
	}
	o.cut = true
	if err := o.Write(ctx, service.NewMessage([]byte(`{"b":2}`))); err != nil {
		t.Fatal(err)
	}
	if err := o.Write(ctx, service.NewMessage([]byte(`{"c":3}`))); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":1}` + "\n" + `{"b"{"other":1}` + "\n\n" + `{"b":2}` + "\n" + `{"c":3}` + "\n"
	if string(data) != want {
		t.Fatalf("the file holds %q, want %q", data, want)
	}
	// Where the file still ends with the cut write, it is taken back.
	if _, err := o.file.Write([]byte(`{"d`)); err != nil {
		t.Fatal(err)
	}
	if !o.takeBack(int64(len(want)), 3) {
		t.Fatal("a cut write at the end of the file was not taken back")
	}
	if data, _ := os.ReadFile(path); string(data) != want {
		t.Fatalf("after taking back, the file holds %q, want %q", data, want)
	}
}
