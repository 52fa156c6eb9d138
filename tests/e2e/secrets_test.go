package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestSASTokenNeverPrinted runs the shipped pipeline on an Azure container
// reached with AZURE_STORAGE_SAS_TOKEN while the storage endpoint refuses
// connections. azblob appends the token to every request, and a network
// error quotes the request URL: its signature must not reach the log.
func TestSASTokenNeverPrinted(t *testing.T) {
	const sig = "sas-sig-never-print-me%2B0043%3D"
	srv := segmentapi.StartT(t, e2eWriteKey)
	admin := freeAddr(t)
	env := pipelineEnv("azblob://currents", srv, filepath.Join(t.TempDir(), "dead.jsonl"),
		"CONNECT_HTTP_ADDRESS="+admin, "AZURE_STORAGE_ACCOUNT=acct",
		"AZURE_STORAGE_SAS_TOKEN=sv=2022-11-02&sp=rl&sig="+sig,
		// A local emulator's layout on an address nothing listens on.
		"AZURE_STORAGE_DOMAIN="+freeAddr(t), "AZURE_STORAGE_PROTOCOL=http", "AZURE_STORAGE_IS_LOCAL_EMULATOR=true")
	p := startConnect(t, repoRoot, env, nil, "--log.level", "trace", "-c", shippedConfig)
	p.waitLines(1, 2*time.Minute, "Failed to connect to braze_currents", "connection refused")
	// The README: /ready answers 200 only while the input is connected too.
	if code, body := httpGet(t, "http://"+admin+"/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready answered %d while the input cannot reach its bucket: %s", code, body)
	}
	if logs := p.logs(); strings.Contains(logs, "never-print-me") {
		t.Fatalf("the SAS token's signature was logged:\n%s", grepLines(logs, "never-print-me"))
	}
}
