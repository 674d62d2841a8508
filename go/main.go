// Command que-testee speaks conformance/PROTOCOL.md over the real que-go library
// (github.com/bgentry/que-go) and pgx v3, as a que-go user would use them.
//
// Arguments are handled the way que-go users handle them: enqueue parses the request's
// JSON text with encoding/json into native Go values and marshals them back into
// Job.Args; the echo job decodes Job.Args with json.Unmarshal into interface{}.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	que "github.com/bgentry/que-go"
	"github.com/jackc/pgx"
)

const protocolVersion = 1

type request struct {
	ID           json.RawMessage `json:"id"`
	Op           string          `json:"op"`
	DatabaseURL  string          `json:"database_url"`
	ResultsTable string          `json:"results_table"`
	JobClass     string          `json:"job_class"`
	ArgsJSON     *string         `json:"args_json"`
	Queue        string          `json:"queue"`
	Priority     *int            `json:"priority"`
	RunAt        *string         `json:"run_at"`
	Workers      int             `json:"workers"`
	DeadlineMS   int             `json:"deadline_ms"`
	MinDuration  int             `json:"min_duration_ms"`
	WakeMS       *int            `json:"wake_interval_ms"`
	JobID        int64           `json:"job_id"`
	Version      int             `json:"version"`
	Count        int             `json:"count"`
}

type testee struct {
	pool         *pgx.ConnPool
	client       *que.Client
	resultsTable string
	workMap      que.WorkMap
	held         map[int64]*que.Job
	mu           sync.Mutex
}

func (t *testee) record(j *que.Job, received *string) error {
	raw := string(j.Args)
	_, err := t.pool.Exec(
		"INSERT INTO "+t.resultsTable+" (impl, pid, job_id, job_class, received, raw) VALUES ('go', $1, $2, $3, $4, $5)",
		int32(os.Getpid()), j.ID, j.Type, received, raw,
	)
	return err
}

func positional(j *que.Job) []interface{} {
	var args []interface{}
	_ = json.Unmarshal(j.Args, &args)
	return args
}

func (t *testee) echo(j *que.Job) error {
	var value interface{}
	if err := json.Unmarshal(j.Args, &value); err != nil {
		return err
	}
	out, err := json.Marshal(value)
	if err != nil {
		return err
	}
	received := string(out)
	return t.record(j, &received)
}

func (t *testee) fail(j *que.Job) error {
	message := "failed"
	if args := positional(j); len(args) > 0 {
		if s, ok := args[0].(string); ok {
			message = s
		}
	}
	return errors.New(message)
}

func (t *testee) sleep(j *que.Job) error {
	if args := positional(j); len(args) > 0 {
		if ms, ok := args[0].(float64); ok {
			time.Sleep(time.Duration(ms * float64(time.Millisecond)))
		}
	}
	return t.record(j, nil)
}

func (t *testee) flaky(j *que.Job) error {
	failures := 1.0
	if args := positional(j); len(args) > 0 {
		if n, ok := args[0].(float64); ok {
			failures = n
		}
	}
	if float64(j.ErrorCount) < failures {
		return fmt.Errorf("flaky failure %d of %v", j.ErrorCount+1, failures)
	}
	received := fmt.Sprintf("[%d]", j.ErrorCount)
	return t.record(j, &received)
}

func (t *testee) crash(j *que.Job) error {
	if err := t.record(j, nil); err != nil {
		return err
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// moduleVersion is the version of a dependency compiled into this binary.
func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			return dep.Version
		}
	}
	return "unknown"
}

func (t *testee) start(req request) (interface{}, error) {
	config, err := pgx.ParseURI(req.DatabaseURL)
	if err != nil {
		return nil, err
	}
	t.pool, err = pgx.NewConnPool(pgx.ConnPoolConfig{
		ConnConfig:     config,
		MaxConnections: 40,
		AfterConnect:   que.PrepareStatements,
		AcquireTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	t.client = que.NewClient(t.pool)
	t.resultsTable = req.ResultsTable
	t.held = map[int64]*que.Job{}
	t.workMap = que.WorkMap{
		"QueConformance::Echo":  t.echo,
		"QueConformance::Fail":  t.fail,
		"QueConformance::Sleep": t.sleep,
		"QueConformance::Crash": t.crash,
		"QueConformance::Noop":  func(j *que.Job) error { return nil },
		"QueConformance::Flaky": t.flaky,
	}
	return map[string]interface{}{
		"name":     "go",
		"version":  "que-go " + moduleVersion("github.com/bgentry/que-go") + ", pgx " + moduleVersion("github.com/jackc/pgx"),
		"language": strings.TrimPrefix(runtimeVersion(), "go"),
		"protocol": protocolVersion,
		"capabilities": map[string]interface{}{
			"enqueue_returns_job_id":   false,
			"enqueue_priority_zero":    false,
			"enqueue_run_at":           true,
			"migrate":                  false,
			"work_pool":                true,
			"lock":                     true,
			"crash_job":                true,
			"race_retry":               true,
			"number_model":             "float64",
			"args_encoding":            "go-encoding-json",
			"last_error_format":        "go",
			"handler_args":             "value",
			"default_wake_interval_ms": 5000,
		},
	}, nil
}

func runtimeVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "Go"
	}
	return "Go " + strings.TrimPrefix(info.GoVersion, "go")
}

func (t *testee) enqueue(req request) (interface{}, error) {
	job := &que.Job{Type: req.JobClass, Queue: req.Queue}
	if req.ArgsJSON != nil {
		var value interface{}
		if err := json.Unmarshal([]byte(*req.ArgsJSON), &value); err != nil {
			return nil, err
		}
		args, err := json.Marshal(value)
		if err != nil {
			return nil, err
		}
		job.Args = args
	}
	if req.Priority != nil {
		job.Priority = int16(*req.Priority)
	}
	if req.RunAt != nil {
		at, err := time.Parse(time.RFC3339Nano, *req.RunAt)
		if err != nil {
			return nil, err
		}
		job.RunAt = at
	}
	if err := t.client.Enqueue(job); err != nil {
		return nil, err
	}
	return map[string]interface{}{"job_id": nil}, nil
}

func (t *testee) benchEnqueue(req request) (interface{}, error) {
	started := time.Now()
	for i := 0; i < req.Count; i++ {
		args, err := json.Marshal([]interface{}{i})
		if err != nil {
			return nil, err
		}
		if err := t.client.Enqueue(&que.Job{Type: req.JobClass, Args: args}); err != nil {
			return nil, err
		}
	}
	return map[string]interface{}{"elapsed_ms": float64(time.Since(started).Microseconds()) / 1000}, nil
}

func (t *testee) workOne(req request) (interface{}, error) {
	worker := que.NewWorker(t.client, t.workMap)
	worker.Queue = req.Queue
	return map[string]interface{}{"worked": worker.WorkOne()}, nil
}

func (t *testee) drained(queue string) (bool, error) {
	var drained bool
	err := t.pool.QueryRow("SELECT NOT EXISTS (SELECT 1 FROM que_jobs WHERE queue = $1 AND run_at <= now())", queue).Scan(&drained)
	return drained, err
}

func (t *testee) work(req request) (interface{}, error) {
	workers := req.Workers
	if workers < 1 {
		workers = 1
	}
	deadline := time.Now().Add(time.Duration(req.DeadlineMS) * time.Millisecond)
	started := time.Now()
	minimum := started.Add(time.Duration(req.MinDuration) * time.Millisecond)
	pool := que.NewWorkerPool(t.client, t.workMap, workers)
	pool.Interval = 10 * time.Millisecond
	if req.WakeMS != nil {
		pool.Interval = time.Duration(*req.WakeMS) * time.Millisecond
	}
	pool.Queue = req.Queue
	pool.Start()
	drained := false
	for time.Now().Before(deadline) {
		done, err := t.drained(req.Queue)
		if err != nil {
			// The server may be restarting; the workers retry too.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if done && !time.Now().Before(minimum) {
			drained = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(started)
	pool.Shutdown()
	return map[string]interface{}{"drained": drained, "elapsed_ms": float64(elapsed.Microseconds()) / 1000}, nil
}

func (t *testee) lock(req request) (interface{}, error) {
	j, err := t.client.LockJob(req.Queue)
	if err != nil {
		return nil, err
	}
	if j == nil {
		return map[string]interface{}{"job": nil}, nil
	}
	t.mu.Lock()
	t.held[j.ID] = j
	t.mu.Unlock()
	return map[string]interface{}{"job": map[string]interface{}{
		"job_id":      j.ID,
		"queue":       j.Queue,
		"priority":    j.Priority,
		"run_at":      j.RunAt.Format(time.RFC3339Nano),
		"job_class":   j.Type,
		"error_count": j.ErrorCount,
	}}, nil
}

func (t *testee) release(req request) (interface{}, error) {
	t.mu.Lock()
	j, ok := t.held[req.JobID]
	delete(t.held, req.JobID)
	t.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("job %d is not held by this testee", req.JobID)
	}
	j.Done()
	return map[string]interface{}{}, nil
}

func (t *testee) stop(req request) (interface{}, error) {
	t.mu.Lock()
	for id, j := range t.held {
		j.Done()
		delete(t.held, id)
	}
	t.mu.Unlock()
	if t.pool != nil {
		t.pool.Close()
	}
	return map[string]interface{}{}, nil
}

func (t *testee) dispatch(req request) (interface{}, error) {
	switch req.Op {
	case "start":
		return t.start(req)
	case "enqueue":
		return t.enqueue(req)
	case "work_one":
		return t.workOne(req)
	case "bench_enqueue":
		return t.benchEnqueue(req)
	case "work":
		return t.work(req)
	case "lock":
		return t.lock(req)
	case "release":
		return t.release(req)
	case "stop":
		return t.stop(req)
	case "migrate":
		return nil, errors.New("que-go ships no migrations (schema.sql only)")
	}
	return nil, fmt.Errorf("unknown op %q", req.Op)
}

func main() {
	t := &testee{}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	for in.Scan() {
		line := in.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var req request
		response := map[string]interface{}{}
		if err := json.Unmarshal(line, &req); err != nil {
			response["id"] = nil
			response["ok"] = false
			response["error"] = map[string]string{"type": "BadRequest", "message": err.Error()}
		} else {
			response["id"] = req.ID
			result, err := func() (result interface{}, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return t.dispatch(req)
			}()
			if err != nil {
				response["ok"] = false
				response["error"] = map[string]string{"type": "Error", "message": err.Error()}
			} else {
				response["ok"] = true
				response["result"] = result
			}
		}
		if err := out.Encode(response); err != nil {
			os.Exit(1)
		}
		if req.Op == "stop" {
			return
		}
	}
}
