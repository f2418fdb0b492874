package pgtest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var pg Harness

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

func query(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "SELECT 41 + 1").Scan(&n)
	return n, err
}

func TestDatabaseStopStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pg.NewDatabase(t)
	if n, err := query(ctx, url); err != nil || n != 42 {
		t.Fatalf("query: %d, %v", n, err)
	}
	c := pg.Cluster(t)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := query(ctx, url); err == nil {
		t.Fatal("query succeeded on a stopped cluster")
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The database created before the stop is still there.
	if n, err := query(ctx, url); err != nil || n != 42 {
		t.Fatalf("query after restart: %d, %v", n, err)
	}
}

func TestTempClusterRemovedOnClose(t *testing.T) {
	pg.Cluster(t) // same skip/fail rules as the shared cluster
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Settings: map[string]string{"max_connections": "50"}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var mc string
	if err := conn.QueryRow(ctx, "SHOW max_connections").Scan(&mc); err != nil || mc != "50" {
		t.Fatalf("max_connections = %q, %v", mc, err)
	}
	conn.Close(ctx)
	dir := c.Dir()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cluster folder %s still there after Close: %v", dir, err)
	}
}

func TestPersistentClusterReused(t *testing.T) {
	pg.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(tempParent(), "pgtest-persist-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := Start(ctx, Options{Dir: dir + "/pg"})
	if err != nil {
		t.Fatal(err)
	}
	url, err := c.EnsureDatabase(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Start(ctx, Options{Dir: dir + "/pg"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.EnsureDatabase(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	if n, err := query(ctx, url); err != nil || n != 42 {
		t.Fatalf("query on reused cluster: %d, %v", n, err)
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{"t1_2": true, "": false, "1abc": false, "a-b": false, "A": false, "x; DROP": false} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v, want %v", name, got, want)
		}
	}
}
