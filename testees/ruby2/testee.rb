# frozen_string_literal: true

# The Ruby testee of the Que 1.x/2.x dialects: conformance/PROTOCOL.md over the real Que 2.4
# gem, or (`testee.rb 1`) the real Que 1.4 gem.
#
# Que is loaded from QUE2_RUBY_LIB (QUE1_RUBY_LIB), the lib/ of a que v2.4.1 (v1.4.1) source
# tree, when set, else from the installed gem. When it cannot be loaded, `start` answers
# "Unavailable" with the reason. Que 1.x and 2.x have no public way to work one job: `work`
# runs their Locker (one locker connection, one worker thread per requested worker, each with
# a connection of its own) until the queue holds no job that is due.

require 'json'
require 'time'
require 'logger'
require_relative '../ruby/serve'

PROTOCOL_OUT = $stdout.dup
PROTOCOL_OUT.sync = true
$stdout = $stderr

PROTOCOL_VERSION = 2
# The Que of this process: 2 (2.4.1, the default) or 1 (1.4.1), and its dialect's facts.
MAJOR = ARGV.first == '1' ? '1' : '2'
QUE_VERSION = MAJOR == '1' ? '1.4' : '2.4'
NAME = MAJOR == '1' ? 'ruby-1.4.1' : 'ruby-2.4.1'
LIB_VARIABLE = MAJOR == '1' ? 'QUE1_RUBY_LIB' : 'QUE2_RUBY_LIB'
JOB_SCHEMA_VERSION = MAJOR == '1' ? 1 : 2

LOAD_ERROR =
  begin
    if ENV[LIB_VARIABLE] && !ENV[LIB_VARIABLE].empty?
      $LOAD_PATH.unshift(ENV[LIB_VARIABLE])
    else
      gem 'que', "~> #{QUE_VERSION}.1" # the installed gem of this dialect, even where several are installed
    end
    require 'pg'
    require 'que'
    unless Que::VERSION.start_with?("#{QUE_VERSION}.")
      raise LoadError, "Que #{Que::VERSION} was loaded, but this testee needs Que #{QUE_VERSION}.x"
    end

    nil
  rescue LoadError => e
    where = ENV[LIB_VARIABLE] ? "#{LIB_VARIABLE}=#{ENV[LIB_VARIABLE]}" : "the installed gems (#{LIB_VARIABLE} is not set)"
    "cannot load Que #{QUE_VERSION} from #{where}: #{e.message.lines.first.to_s.strip}. Install the gem (gem install que -v " \
      "#{QUE_VERSION}.1; the bootstrap does this where RubyGems is reachable), or set #{LIB_VARIABLE} to the lib/ " \
      "folder of a que v#{QUE_VERSION}.1 source tree"
  end

# Que 1.x was written for Ruby 2, where a hash passed last to a method that takes only
# keywords becomes its keywords. Its Worker#work_job calls Que.log(log_message) so, and on
# Ruby 3 that raises ArgumentError after every job (which Que then books as a second
# failure of the job). This restores Ruby 2's reading for that one method; nothing else of
# Que 1.4.1 is touched, and a handler's arguments keep Ruby 3's rules (a last hash stays
# positional). The start result names the shim.
RUBY2_LOG_SHIM = MAJOR == '1' && !LOAD_ERROR && RUBY_VERSION >= '3'
if RUBY2_LOG_SHIM
  Que.singleton_class.prepend(QueConformanceRuby2Log)
end

module QueConformance
  class << self
    attr_accessor :results_table
  end

  # What a handler received, as JSON: its positional and its keyword arguments.
  def self.record(job, received)
    Que.execute(
      "INSERT INTO #{results_table} (impl, pid, job_id, job_class, received, raw) " \
      "VALUES ('#{NAME}', $1, $2, $3, $4, NULL)",
      [Process.pid, job.que_attrs[:id], job.que_attrs[:job_class], received]
    )
  end
end

unless LOAD_ERROR
  module QueConformance
    class Echo < Que::Job
      def run(*args, **kwargs)
        QueConformance.record(self, JSON.generate({ args: args, kwargs: kwargs }))
      end
    end

    class Fail < Que::Job
      def run(message = 'failed', *_rest, **_kwargs)
        raise RuntimeError, message
      end
    end

    class Sleep < Que::Job
      def run(milliseconds = 0, *_rest, **_kwargs)
        sleep(milliseconds.to_f / 1000)
        QueConformance.record(self, nil)
      end
    end

    class Noop < Que::Job
      def run(*_args, **_kwargs); end
    end

    # Que 2's job methods: keep the row, finished or expired, instead of destroying it.
    class Finish < Que::Job
      def run(*_args, **_kwargs)
        QueConformance.record(self, nil)
        finish
      end
    end

    class Expire < Que::Job
      def run(*_args, **_kwargs)
        QueConformance.record(self, nil)
        expire
      end
    end
  end
end

class Testee
  def op_start(req)
    raise UnavailableError, LOAD_ERROR if LOAD_ERROR

    QueConformance.results_table = req.fetch('results_table')
    @url = req.fetch('database_url')
    url = @url
    # Que 2's pool checks a connection out per thread and asserts it is not shared, so
    # every thread gets a connection of its own.
    Que.connection_proc = proc { |&block| block.call(Thread.current[:que_testee_connection] ||= PG.connect(url)) }
    Que.logger = Logger.new($stderr, level: Logger::WARN)
    {
      name: NAME,
      version: "que #{Que::VERSION}, pg #{PG::VERSION}#{RUBY2_LOG_SHIM ? ' (with a Ruby 2 reading of Que.log\'s keywords)' : ''}",
      language: "Ruby #{RUBY_VERSION}",
      protocol: PROTOCOL_VERSION,
      dialect: MAJOR,
      capabilities: { enqueue_returns_job_id: true, enqueue_run_at: true, migrate: true, work_pool: true }
    }
  end

  def op_migrate(req)
    Que.migrate!(version: Integer(req.fetch('version')))
    {}
  end

  def op_enqueue(req)
    args = req.key?('args_json') ? JSON.parse(req['args_json']) : []
    raise ArgumentError, "args_json must be a JSON array, got #{req['args_json']}" unless args.is_a?(Array)

    # A Ruby caller passes keyword arguments by name: symbols.
    kwargs = req.key?('kwargs_json') ? JSON.parse(req['kwargs_json'], symbolize_names: false) : {}
    raise ArgumentError, "kwargs_json must be a JSON object, got #{req['kwargs_json']}" unless kwargs.is_a?(Hash)

    options = { job_class: req.fetch('job_class') }
    options[:queue] = req['queue'] if req.key?('queue')
    options[:priority] = req['priority'] if req.key?('priority')
    options[:run_at] = Time.iso8601(req['run_at']) if req.key?('run_at')
    options[:tags] = req['tags'] if req.key?('tags')
    job = Que::Job.enqueue(*args, job_options: options, **kwargs.transform_keys(&:to_sym))
    { job_id: job.que_attrs[:id] }
  end

  def drained?(queue)
    rows = Que.execute(
      'SELECT NOT EXISTS (SELECT 1 FROM public.que_jobs WHERE queue = $1 AND run_at <= now() ' \
      "AND finished_at IS NULL AND expired_at IS NULL AND job_schema_version = #{JOB_SCHEMA_VERSION}) AS drained",
      [queue]
    )
    rows.first[:drained] == true
  end

  def op_work(req)
    queue = req.fetch('queue', Que.default_queue)
    started = Time.now
    locker = Que::Locker.new(
      queues: [queue],
      connection_url: @url,
      listen: req.fetch('listen', true),
      poll_interval: req.fetch('wake_interval_ms', 10) / 1000.0,
      worker_priorities: req.fetch('priorities') { [nil] * Integer(req.fetch('workers', 1)) }
    )
    result = wait_drained(req, started) { drained?(queue) }
    locker.stop!
    result
  end

  def op_stop(_req)
    {}
  end
end

serve(Testee.new, PROTOCOL_OUT)
