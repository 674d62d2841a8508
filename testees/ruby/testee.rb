# frozen_string_literal: true

# The Ruby testee: conformance/PROTOCOL.md over the real Que 0.14 gem and the pg gem.
#
# Que is loaded from QUE_RUBY_LIB (a directory holding que.rb) when set, else from the
# installed gem. When it cannot be loaded, `start` answers with an error of type
# "Unavailable" and the reason, so the harness reports the Ruby cells as unavailable.

require 'json'
require 'time'
require 'logger'
require_relative 'serve'

# Protocol responses go to the real stdout; anything else that prints goes to stderr.
PROTOCOL_OUT = $stdout.dup
PROTOCOL_OUT.sync = true
$stdout = $stderr

PROTOCOL_VERSION = 2

LOAD_ERROR =
  begin
    if ENV['QUE_RUBY_LIB'] && !ENV['QUE_RUBY_LIB'].empty?
      $LOAD_PATH.unshift(ENV['QUE_RUBY_LIB'])
    else
      gem 'que', '~> 0.14.3' # the installed gem of this dialect, even where both are installed
    end
    require 'pg'
    require 'que'
    unless Que::Version.start_with?('0.14.')
      raise LoadError, "Que #{Que::Version} was loaded, but this testee needs Que 0.14.x"
    end
    nil
  rescue LoadError => e
    where = ENV['QUE_RUBY_LIB'] ? "QUE_RUBY_LIB=#{ENV['QUE_RUBY_LIB']}" : 'the installed gems (QUE_RUBY_LIB is not set)'
    "cannot load Que 0.14 from #{where}: #{e.message.lines.first.to_s.strip}. Install the gem (gem install que -v 0.14.3, or " \
      'bundle install with ruby/Gemfile; the bootstrap does this where RubyGems is reachable), or set ' \
      'QUE_RUBY_LIB to the lib/ folder of a que v0.14.3 source tree'
  end

module QueConformance
  class << self
    attr_accessor :results_table, :database_url
  end

  def self.record(job, received)
    Que.execute(
      "INSERT INTO #{results_table} (impl, pid, job_id, job_class, received, raw) " \
      "VALUES ('ruby', $1, $2, $3, $4, NULL)",
      [Process.pid, job.attrs[:job_id], job.attrs[:job_class], received]
    )
  end
end

unless LOAD_ERROR
  module QueConformance
    class Echo < Que::Job
      def run(*args)
        QueConformance.record(self, JSON.generate(args))
      end
    end

    class Fail < Que::Job
      def run(message = 'failed', *_rest)
        raise RuntimeError, message
      end
    end

    class Sleep < Que::Job
      def run(milliseconds = 0, *_rest)
        sleep(milliseconds.to_f / 1000)
        QueConformance.record(self, nil)
      end
    end

    class Flaky < Que::Job
      def run(failures = 1, *_rest)
        count = attrs[:error_count].to_i
        raise RuntimeError, "flaky failure #{count + 1} of #{failures}" if count < failures.to_i

        QueConformance.record(self, JSON.generate([count]))
      end
    end

    class Noop < Que::Job
      def run(*_args); end
    end
  end
end

class Testee
  def initialize
    @held = {}
  end

  def connect(url)
    PG::Connection.new(url)
  end

  def op_start(req)
    raise UnavailableError, LOAD_ERROR if LOAD_ERROR

    QueConformance.results_table = req.fetch('results_table')
    QueConformance.database_url = req.fetch('database_url')
    url = req.fetch('database_url')
    begin
      require 'connection_pool'
      # One connection per worker at most (connection_pool opens them as needed): the bench
      # runs 128 workers, each holding its connection for its job.
      Que.connection = ConnectionPool.new(size: 140) { connect(url) }
    rescue LoadError
      warn 'connection_pool is not installed: Que shares one connection, so its pool works one job at a time'
      Que.connection = connect(url)
    end
    Que.logger = Logger.new($stderr)
    Que.mode = :off
    {
      name: 'ruby',
      version: "que #{Que::Version}, pg #{PG::VERSION}",
      language: "Ruby #{RUBY_VERSION}",
      protocol: PROTOCOL_VERSION,
      capabilities: {
        enqueue_returns_job_id: true,
        enqueue_run_at: true,
        migrate: true,
        work_pool: true,
        lock: true,
        race_retry: false,
        number_model: 'exact',
        args_encoding: 'ruby-json-dump',
        last_error_format: 'ruby',
        stats: true,
        default_wake_interval_ms: 5000
      }
    }
  end

  def op_job_stats(_req)
    rows = Que.job_stats.map do |row|
      {
        queue: row[:queue], job_class: row[:job_class], count: row[:count], count_working: row[:count_working],
        count_errored: row[:count_errored], highest_error_count: row[:highest_error_count],
        oldest_run_at: row[:oldest_run_at].utc.iso8601(6)
      }
    end
    { rows: rows }
  end

  def op_worker_states(_req)
    rows = Que.worker_states.map do |row|
      { job_id: row[:job_id], job_class: row[:job_class], pg_backend_pid: row[:pg_backend_pid] }
    end
    { rows: rows }
  end

  def op_migrate(req)
    Que.migrate!(version: Integer(req.fetch('version')))
    {}
  end

  def op_enqueue(req)
    args = req.key?('args_json') ? JSON.parse(req['args_json']) : []
    raise ArgumentError, "args_json must be a JSON array, got #{req['args_json']}" unless args.is_a?(Array)

    # The options hash always comes last, so a Hash that ends the arguments stays an
    # argument instead of being read as options.
    options = { job_class: req.fetch('job_class') }
    options[:queue] = req['queue'] if req.key?('queue')
    options[:priority] = req['priority'] if req.key?('priority')
    options[:run_at] = Time.iso8601(req['run_at']) if req.key?('run_at')
    job = Que::Job.enqueue(*args, options)
    { job_id: job.attrs[:job_id] }
  end

  def op_bench_enqueue(req)
    job_class = req.fetch('job_class')
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    Integer(req.fetch('count')).times { |i| Que::Job.enqueue(i, job_class: job_class) }
    { elapsed_ms: ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round(2) }
  end

  def op_work_one(req)
    result = Que::Job.work(req.fetch('queue', ''))
    event = result[:event].to_s
    { worked: event != 'job_unavailable', event: event }
  end

  def drained?(queue)
    rows = Que.execute('SELECT NOT EXISTS (SELECT 1 FROM que_jobs WHERE queue = $1 AND run_at <= now()) AS drained',
                       [queue])
    rows.first[:drained] == true
  end

  def op_work(req)
    queue = req.fetch('queue', '')
    deadline = Time.now + req.fetch('deadline_ms', 60_000) / 1000.0
    started = Time.now
    minimum = started + req.fetch('min_duration_ms', 0) / 1000.0
    Que.queue_name = queue
    Que.worker_count = Integer(req.fetch('workers', 1))
    Que.wake_interval = req.fetch('wake_interval_ms', 10) / 1000.0
    Que.mode = :async
    drained = false
    while Time.now < deadline
      done = begin
        drained?(queue)
      rescue PG::Error
        sleep 0.1
        next
      end
      if done && Time.now >= minimum
        drained = true
        break
      end
      sleep 0.005
    end
    elapsed = Time.now - started
    Que.worker_count = 0
    Que.mode = :off
    { drained: drained, elapsed_ms: (elapsed * 1000).round(1) }
  end

  # Que 0.x has no public API to hold a lock across calls, so this uses Que's own
  # lock_job and check_job statements on a dedicated connection, as Job.work does.
  def op_lock(req)
    conn = connect(QueConformance.database_url)
    queue = req.fetch('queue', '')
    loop do
      row = conn.exec_params(Que::SQL[:lock_job], [queue]).first
      unless row
        conn.close
        return { job: nil }
      end
      check = conn.exec_params(Que::SQL[:check_job], [row['queue'], row['priority'], row['run_at'], row['job_id']])
      if check.ntuples.positive?
        @held[Integer(row['job_id'])] = conn
        return { job: {
          job_id: Integer(row['job_id']), queue: row['queue'], priority: Integer(row['priority']),
          run_at: row['run_at'], job_class: row['job_class'], error_count: Integer(row['error_count'])
        } }
      end
      conn.exec_params('SELECT pg_advisory_unlock($1)', [row['job_id']])
    end
  end

  def op_release(req)
    job_id = Integer(req.fetch('job_id'))
    conn = @held.delete(job_id) or raise KeyError, "job #{job_id} is not held by this testee"
    conn.exec_params('SELECT pg_advisory_unlock($1)', [job_id])
    conn.close
    {}
  end

  def op_stop(_req)
    @held.each_value(&:close)
    @held.clear
    {}
  end
end

serve(Testee.new, PROTOCOL_OUT)
