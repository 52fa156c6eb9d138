package buckets

import (
	"context"
	"net/url"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"

	"github.com/currents-connect/currents-connect/tests/serverproc"
)

// Azurite's well-known development account (public, documented by Microsoft).
const (
	azAccount   = "devstoreaccount1"
	azKey       = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	azContainer = "connect-test"
)

var azListening = regexp.MustCompile(`successfully listens on (http://\S+)`)

// StartAzurite runs azurite-blob from tests/buckets/node_modules (or the
// path in $AZURITE_BLOB) on 127.0.0.1 with one empty container. It installs
// Azurite there first if needed (see installAzurite).
func StartAzurite(t testing.TB) *Bucket {
	t.Helper()
	bin := installAzurite(t)
	// Port 0: Azurite binds a free port and prints it, so there is no race.
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", "0",
		"--location", t.TempDir(), "--silent", "--skipApiVersionCheck", "--loose",
		"--disableTelemetry") // telemetry would try to reach the internet
	endpoint := serverproc.StartServer(t, cmd, azListening, 60*time.Second)
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("azurite printed %q: %v", endpoint, err)
	}

	// gocloud reads AZURE_STORAGE_* once per process, at the first azblob://
	// open; these values are the same for every Azurite, so that is harmless.
	b := &Bucket{
		URL: "azblob://" + azContainer + "?domain=" + u.Host + "&protocol=http&localemu=true",
		Env: map[string]string{
			"AZURE_STORAGE_ACCOUNT": azAccount,
			"AZURE_STORAGE_KEY":     azKey,
			// A SAS token in the environment would forbid the domain override.
			"AZURE_STORAGE_SAS_TOKEN": "",
		},
		Name: azContainer,
	}
	containerURL := endpoint + "/" + azAccount + "/" + azContainer
	newClient := func() (*container.Client, error) {
		cred, err := azblob.NewSharedKeyCredential(azAccount, azKey)
		if err != nil {
			return nil, err
		}
		return container.NewClientWithSharedKeyCredential(containerURL, cred, nil)
	}
	b.open = func(ctx context.Context) (*blob.Bucket, error) {
		client, err := newClient()
		if err != nil {
			return nil, err
		}
		return azureblob.OpenBucket(ctx, client, nil)
	}
	client, err := newClient()
	if err == nil {
		_, err = client.Create(context.Background(), nil)
	}
	if err != nil {
		t.Fatalf("create container on azurite %s: %v", endpoint, err)
	}
	return b
}
