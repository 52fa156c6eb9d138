package e2e

import (
	"os"
	"path"
	"slices"
	"strings"
	"testing"
)

// TestDocsLinksResolve checks every relative link of the user docs (README,
// docs/, the component pages): the file it names exists, and the section
// (#anchor) it names, in a Markdown page, is one of that page's headings,
// so that a heading renamed or a page moved fails here rather than leave a
// reader at the top of a page, or at a 404.
func TestDocsLinksResolve(t *testing.T) {
	parallelCPU(t)
	docs := userDocs(t)
	links := 0
	for doc, text := range docs {
		if !strings.HasSuffix(doc, ".md") {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links++
			file, anchor, _ := strings.Cut(target, "#")
			if file == "" {
				file = doc
			} else {
				file = path.Clean(path.Join(path.Dir(doc), file))
			}
			if _, err := os.Stat(repoRoot + "/" + file); err != nil {
				t.Errorf("%s links to %s: %v", doc, target, err)
				continue
			}
			page, isDoc := docs[file]
			if anchor != "" && isDoc && strings.HasSuffix(file, ".md") && !slices.Contains(markdownAnchors(page), anchor) {
				t.Errorf("%s links to %s: %s has no heading with the anchor #%s", doc, target, file, anchor)
			}
		}
	}
	if links < 50 {
		t.Fatalf("only %d relative links found in the docs: the pattern no longer matches how they link", links)
	}
}
