// Command que-go-testee puts the real que-go library (github.com/bgentry/que-go v1.0.1,
// over pgx v3) under the conformance harness, used as a que-go user would use it.
package main

import (
	"time"

	que "github.com/bgentry/que-go"
	"github.com/jackc/pgx"

	"queinterop/go-testee/testee"
)

type quego struct {
	pool    *pgx.ConnPool
	client  *que.Client
	workMap que.WorkMap
	held    *testee.Holder[*que.Job]
}

func (q *quego) Start(url string, handlers map[string]testee.Handler) (*pgx.ConnPool, error) {
	config, err := pgx.ParseURI(url)
	if err != nil {
		return nil, err
	}
	q.pool, err = pgx.NewConnPool(pgx.ConnPoolConfig{
		ConnConfig:     config,
		MaxConnections: testee.PoolSize,
		AfterConnect:   que.PrepareStatements,
		AcquireTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	q.client = que.NewClient(q.pool)
	q.held = testee.NewHolder(func(j *que.Job) { j.Done() })
	q.workMap = que.WorkMap{}
	for name, handler := range handlers {
		handler := handler
		q.workMap[name] = func(j *que.Job) error {
			return handler(testee.Job{ID: j.ID, Type: j.Type, Args: j.Args, ErrorCount: j.ErrorCount})
		}
	}
	return q.pool, nil
}

func (q *quego) Name() string { return "go" }

func (q *quego) Version() string {
	return "que-go " + testee.ModuleVersion("github.com/bgentry/que-go") + ", pgx " +
		testee.ModuleVersion("github.com/jackc/pgx")
}

func (q *quego) Capabilities() map[string]interface{} {
	return map[string]interface{}{
		"enqueue_returns_job_id":   false,
		"enqueue_run_at":           true,
		"migrate":                  false,
		"work_pool":                true,
		"lock":                     true,
		"race_retry":               true,
		"number_model":             "float64",
		"args_encoding":            "go-encoding-json",
		"last_error_format":        "go",
		"default_wake_interval_ms": 5000,
	}
}

func (q *quego) Enqueue(job testee.NewJob) (*int64, error) {
	return nil, q.client.Enqueue(&que.Job{
		Type: job.Type, Args: job.Args, Queue: job.Queue, Priority: job.Priority, RunAt: job.RunAt,
	})
}

func (q *quego) WorkOne(queue string) bool {
	worker := que.NewWorker(q.client, q.workMap)
	worker.Queue = queue
	return worker.WorkOne()
}

func (q *quego) StartPool(queue string, workers int, interval time.Duration) func() {
	pool := que.NewWorkerPool(q.client, q.workMap, workers)
	pool.Interval = interval
	pool.Queue = queue
	pool.Start()
	return pool.Shutdown
}

func (q *quego) Lock(queue string) (*testee.Held, error) {
	j, err := q.client.LockJob(queue)
	if err != nil || j == nil {
		return nil, err
	}
	q.held.Keep(j.ID, j)
	return &testee.Held{ID: j.ID, Queue: j.Queue, Priority: j.Priority, RunAt: j.RunAt, Type: j.Type, ErrorCount: j.ErrorCount}, nil
}

func (q *quego) Release(jobID int64) error {
	return q.held.Release(jobID)
}

func (q *quego) ReleaseAll() {
	q.held.ReleaseAll()
}

func main() {
	testee.Main(&quego{})
}
