// Command gue-testee puts the real gue library (github.com/vgarvardt/gue v1.0.2, the
// last major version on que_jobs, over pgx v3 through its adapter) under the conformance
// harness, used as a gue user would use it.
package main

import (
	"context"
	"time"

	"github.com/jackc/pgx"
	"github.com/vgarvardt/gue"
	"github.com/vgarvardt/gue/adapter/pgxv3"

	"queinterop/go-testee/testee"
)

type gueLib struct {
	pool    *pgx.ConnPool
	client  *gue.Client
	workMap gue.WorkMap
	held    *testee.Holder[*gue.Job]
}

func (g *gueLib) Start(url string, handlers map[string]testee.Handler) (*pgx.ConnPool, error) {
	config, err := pgx.ParseURI(url)
	if err != nil {
		return nil, err
	}
	g.pool, err = pgx.NewConnPool(pgx.ConnPoolConfig{
		ConnConfig:     config,
		MaxConnections: testee.PoolSize,
		AcquireTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	g.client = gue.NewClient(pgxv3.NewConnPool(g.pool))
	g.held = testee.NewHolder(func(j *gue.Job) { j.Done(context.Background()) })
	g.workMap = gue.WorkMap{}
	for name, handler := range handlers {
		handler := handler
		g.workMap[name] = func(j *gue.Job) error {
			return handler(testee.Job{ID: j.ID, Type: j.Type, Args: j.Args, ErrorCount: j.ErrorCount})
		}
	}
	return g.pool, nil
}

func (g *gueLib) Name() string { return "gue" }

func (g *gueLib) Version() string {
	return "gue " + testee.ModuleVersion("github.com/vgarvardt/gue") + ", pgx " +
		testee.ModuleVersion("github.com/jackc/pgx")
}

func (g *gueLib) Capabilities() map[string]interface{} {
	return map[string]interface{}{
		"enqueue_returns_job_id":   false,
		"enqueue_run_at":           true,
		"migrate":                  false,
		"work_pool":                true,
		"lock":                     true,
		"race_retry":               true,
		"number_model":             "float64",
		"args_encoding":            "go-encoding-json",
		"last_error_format":        "gue",
		"default_wake_interval_ms": 5000,
	}
}

func (g *gueLib) Enqueue(job testee.NewJob) (*int64, error) {
	return nil, g.client.Enqueue(context.Background(), &gue.Job{
		Type: job.Type, Args: job.Args, Queue: job.Queue, Priority: job.Priority, RunAt: job.RunAt,
	})
}

func (g *gueLib) WorkOne(queue string) bool {
	return gue.NewWorker(g.client, g.workMap, gue.WithQueue(queue)).WorkOne(context.Background())
}

// StartPool starts gue's WorkerPool. gue v1 stops a pool only by cancelling its context,
// and a job finishing at that moment loses its unlock: Worker.WorkOne defers
// j.Done(ctx) with the pool's context, pgx refuses a query on a cancelled context, and the
// connection goes back to the pool still holding the job's advisory lock (found by the
// exactly-once cell). So the testee waits for the workers to be idle (every pool
// connection back) before it cancels, and again after, as a careful gue user would.
func (g *gueLib) StartPool(queue string, workers int, interval time.Duration) func() {
	ctx, cancel := context.WithCancel(context.Background())
	pool := gue.NewWorkerPool(g.client, g.workMap, workers, gue.WithPoolQueue(queue), gue.WithPoolPollInterval(interval))
	if err := pool.Start(ctx); err != nil {
		panic(err)
	}
	return func() {
		g.waitIdle(interval)
		cancel()
		g.waitIdle(interval)
	}
}

// waitIdle returns once no pool connection has been checked out for three polls in a row.
func (g *gueLib) waitIdle(interval time.Duration) {
	for quiet := 0; quiet < 3; {
		stat := g.pool.Stat()
		if stat.AvailableConnections == stat.CurrentConnections {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(interval + 10*time.Millisecond)
	}
}

func (g *gueLib) Lock(queue string) (*testee.Held, error) {
	j, err := g.client.LockJob(context.Background(), queue)
	if err != nil || j == nil {
		return nil, err
	}
	g.held.Keep(j.ID, j)
	return &testee.Held{ID: j.ID, Queue: j.Queue, Priority: j.Priority, RunAt: j.RunAt, Type: j.Type, ErrorCount: j.ErrorCount}, nil
}

func (g *gueLib) Release(jobID int64) error {
	return g.held.Release(jobID)
}

func (g *gueLib) ReleaseAll() {
	g.held.ReleaseAll()
}

func main() {
	testee.Main(&gueLib{})
}
