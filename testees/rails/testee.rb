# frozen_string_literal: true

# The Rails row: a Rails app's side of a shared Que queue. The real ActiveJob (Debian's
# ruby-activejob, Rails 6.1) on the real Ruby Que of the run's dialect: 0.14.3 (QUE_RUBY_LIB),
# 1.4.1 (QUE1_RUBY_LIB) or 2.4.1 (QUE2_RUBY_LIB), each else from the installed gem. It speaks
# the ActiveJob part of conformance/PROTOCOL.md (capability active_job): `aj_enqueue` is
# `perform_later` through ActiveJob's Que adapter, and `work_one` (0.14) or `work` (1, 2) runs
# Que's own worker, which hands each JobWrapper row to ActiveJob. Its job classes are
# QueConformance::AjEcho and ::AjFail. When Que or ActiveJob cannot load, `start` answers
# Unavailable with the reason.
#
# Values cross the protocol as SPECs, a value described with its Ruby type (so a Symbol, a
# TimeWithZone's zone or a time's nanoseconds survive the JSON in between):
#   ["nil"] ["true"] ["false"] ["int", "12"] ["float", 1.5] ["str", "s"] ["sym", "s"]
#   ["decimal", "1.5"] ["array", [SPEC...]] ["hash", KIND, [[KEY, SPEC]...]] with KIND
#   "plain", "kwargs" or "indifferent" and KEY ["str", k] or ["sym", k];
#   ["time", CLASS, "<UTC iso8601 to the nanosecond>", offset_seconds, zone_name_or_nil]
#   ["date", "2026-01-02"] ["duration", value_spec, parts_hash_spec] ["gid", uri] ["module", name]
# A job's arguments are ["array", [...]]; its keyword arguments are a last "kwargs" hash.

require 'json'
require 'time'
require 'logger'
require_relative '../ruby/serve'

PROTOCOL_OUT = $stdout.dup
PROTOCOL_OUT.sync = true
$stdout = $stderr

# The run's dialect -> the Que it runs on and where that Que comes from.
QUES = {
  '0.14' => { version: '0.14', lib: 'QUE_RUBY_LIB', schema: nil },
  '1' => { version: '1.4', lib: 'QUE1_RUBY_LIB', schema: 1 },
  '2' => { version: '2.4', lib: 'QUE2_RUBY_LIB', schema: 2 }
}.freeze

# ActiveJob first: Que 1.x/2.x load their ActiveJob extensions only when it is there.
def load_rails(dialect)
  que = QUES.fetch(dialect) { raise UnavailableError, "no Que dialect #{dialect.inspect} here: 0.14, 1 and 2 are known" }
  variable = que[:lib]
  begin
    require 'active_job'
    require 'active_support/time'
    require 'global_id'
    require 'bigdecimal'
  rescue LoadError => e
    raise UnavailableError, "cannot load ActiveJob (Debian's ruby-activejob and ruby-globalid): #{e.message.lines.first.strip}"
  end
  begin
    if ENV[variable] && !ENV[variable].empty?
      $LOAD_PATH.unshift(ENV[variable])
    else
      gem 'que', "~> #{que[:version]}.1"
    end
    require 'pg'
    require 'que'
    version = defined?(Que::VERSION) ? Que::VERSION : Que::Version
    raise LoadError, "Que #{version} was loaded, but this row needs Que #{que[:version]}.x" unless version.start_with?("#{que[:version]}.")

    require 'active_job/queue_adapters/que_adapter'
  rescue LoadError => e
    where = ENV[variable] ? "#{variable}=#{ENV[variable]}" : "the installed gems (#{variable} is not set)"
    raise UnavailableError, "cannot load Que #{que[:version]} from #{where}: #{e.message.lines.first.to_s.strip}"
  end
  version
end

def define_jobs
  Object.const_get(:QueConformance).module_eval do
    # A record GlobalID can find again: its id is all it has.
    const_set(:Thing, Class.new do
      include GlobalID::Identification
      attr_reader :id

      def initialize(id)
        @id = id
      end

      def self.find(id)
        new(id)
      end

    end)

    # Writes what it received, described, to the results table.
    const_set(:AjEcho, Class.new(ActiveJob::Base) do

      def perform(*arguments)
        QueConformance.record(
          self, { job_id: job_id, arguments: QueConformance::Spec.describe(arguments), executions: executions,
                  exception_executions: exception_executions, queue_name: queue_name, priority: priority,
                  locale: locale }
        )
      end
      ruby2_keywords(:perform)
    end)

    # Fails with its message, with no retry_on: the error goes to Que, which retries the row.
    const_set(:AjFail, Class.new(ActiveJob::Base) do

      def perform(message = 'failed', *)
        raise ArgumentError, message
      end
    end)
  end
end

module QueConformance
  class << self
    attr_accessor :results_table, :database_url, :name
  end

  # The Que row id of the job this thread runs (Que 0.14: set by the wrapper; 1.x/2.x keep it).
  def self.que_id
    job = Thread.current[:que_current_job] || Thread.current[:que_conformance_job]
    return nil unless job

    job.respond_to?(:que_attrs) ? job.que_attrs[:id] : job.attrs[:job_id]
  end

  def self.record(job, received)
    conn = PG.connect(database_url)
    conn.exec_params(
      "INSERT INTO #{results_table} (impl, pid, job_id, job_class, received, raw) VALUES ($1, $2, $3, $4, $5, NULL)",
      [name, Process.pid, que_id || 0, job.class.name, JSON.generate(received)]
    )
  ensure
    conn&.close
  end

  # The Que 0.14 wrapper tells no one which row it runs; this keeps it for QueConformance.que_id.
  module KeepJob
    def _run(*)
      Thread.current[:que_conformance_job] = self
      super
    ensure
      Thread.current[:que_conformance_job] = nil
    end
  end

  module Spec
    module_function

    def build(spec)
      type, *rest = spec
      case type
      when 'nil' then nil
      when 'true' then true
      when 'false' then false
      when 'int' then Integer(rest[0])
      when 'float' then Float(rest[0])
      when 'str' then rest[0]
      when 'sym' then rest[0].to_sym
      when 'decimal' then BigDecimal(rest[0])
      when 'array' then rest[0].map { |item| build(item) }
      when 'hash' then build_hash(rest[0], rest[1])
      when 'time' then build_time(*rest)
      when 'date' then Date.iso8601(rest[0])
      when 'duration' then ActiveSupport::Duration.new(build(rest[0]), build(rest[1]))
      when 'gid' then GlobalID::Locator.locate(rest[0])
      when 'module' then Object.const_get(rest[0])
      else raise ArgumentError, "no Ruby value for #{spec.inspect}"
      end
    end

    def build_hash(kind, pairs)
      hash = pairs.to_h { |(key_type, key), value| [key_type == 'sym' ? key.to_sym : key, build(value)] }
      case kind
      when 'indifferent' then hash.with_indifferent_access
      when 'kwargs' then Hash.ruby2_keywords_hash(hash)
      else hash
      end
    end

    def build_time(klass, utc_text, offset, zone)
      utc = Time.iso8601(utc_text)
      case klass
      when 'Time' then offset.zero? && zone == 'UTC' ? utc.utc : utc.getlocal(offset)
      when 'ActiveSupport::TimeWithZone' then utc.in_time_zone(zone || 'UTC')
      when 'DateTime' then utc.getlocal(offset).to_datetime
      else raise ArgumentError, "no time class #{klass}"
      end
    end

    def describe(value)
      case value
      when nil then ['nil']
      when true then ['true']
      when false then ['false']
      when Integer then ['int', value.to_s]
      when Float then ['float', value]
      when String then ['str', value]
      when Symbol then ['sym', value.to_s]
      when BigDecimal then ['decimal', value.to_s('F')]
      when Array then ['array', value.map { |item| describe(item) }]
      when ActiveSupport::HashWithIndifferentAccess then ['hash', 'indifferent', pairs(value)]
      when Hash then ['hash', Hash.ruby2_keywords_hash?(value) ? 'kwargs' : 'plain', pairs(value)]
      when ActiveSupport::TimeWithZone
        ['time', 'ActiveSupport::TimeWithZone', value.utc.iso8601(9), value.utc_offset, value.time_zone.tzinfo.name]
      when DateTime then ['time', 'DateTime', value.to_time.utc.iso8601(9), (value.offset * 86_400).to_i, nil]
      when Time then ['time', 'Time', value.getutc.iso8601(9), value.utc_offset, value.utc? ? 'UTC' : nil]
      when Date then ['date', value.iso8601]
      when ActiveSupport::Duration then ['duration', describe(value.value), describe(value.parts.to_h)]
      when QueConformance::Thing then ['gid', value.to_global_id.to_s]
      when Module then ['module', value.name]
      else ['unknown', value.class.name, value.inspect]
      end
    end

    def pairs(hash)
      hash.map { |key, value| [[key.is_a?(Symbol) ? 'sym' : 'str', key.to_s], describe(value)] }
    end
  end
end

class Testee
  def op_start(req)
    @dialect = req.fetch('dialect', '0.14')
    que_version = load_rails(@dialect)
    Que.singleton_class.prepend(QueConformanceRuby2Log) if @dialect == '1' && RUBY_VERSION >= '3'
    QueConformance.name = 'rails'
    QueConformance.results_table = req.fetch('results_table')
    QueConformance.database_url = url = req.fetch('database_url')
    Time.zone_default = Time.find_zone!('UTC') # config.time_zone = 'UTC', every thread's Time.zone
    GlobalID.app = 'que-conformance'
    ActiveJob::Base.queue_adapter = :que
    ActiveJob::Base.logger = Logger.new($stderr, level: Logger::WARN)
    define_jobs
    if @dialect == '0.14'
      ActiveJob::QueueAdapters::QueAdapter::JobWrapper.prepend(QueConformance::KeepJob)
      Que.connection = PG.connect(url)
      Que.mode = :off
      Que.logger = Logger.new($stderr, level: Logger::WARN)
    else
      Que.connection_proc = proc { |&block| block.call(Thread.current[:que_conformance_connection] ||= PG.connect(url)) }
      Que.logger = Logger.new($stderr, level: Logger::WARN)
    end
    result = {
      name: 'rails',
      version: "ActiveJob #{ActiveJob.gem_version} on que #{que_version}, pg #{PG::VERSION}",
      language: "Ruby #{RUBY_VERSION}",
      protocol: 2,
      capabilities: { active_job: '6.1', work_pool: @dialect != '0.14' }
    }
    result[:dialect] = @dialect unless @dialect == '0.14'
    result
  end

  def op_aj_enqueue(req)
    klass = Object.const_get(req.fetch('job_class'))
    options = {}
    options[:queue] = req['queue'] if req.key?('queue')
    options[:priority] = req['priority'] if req.key?('priority')
    options[:wait] = req['wait_s'] if req.key?('wait_s')
    arguments = QueConformance::Spec.build(req.fetch('arguments'))
    job = (options.empty? ? klass : klass.set(**options)).perform_later(*arguments)
    raise "ActiveJob did not enqueue #{klass}" unless job

    { job_id: job.job_id }
  end

  def op_work_one(req)
    raise NotImplementedError, "Que #{@dialect} has no way to work one job" unless @dialect == '0.14'

    result = Que::Job.work(req.fetch('queue', ''))
    event = result[:event].to_s
    { worked: event != 'job_unavailable', event: event }
  end

  def due?(queue)
    sql = +'SELECT count(*) AS n FROM public.que_jobs WHERE queue = $1 AND run_at <= now()'
    sql << " AND finished_at IS NULL AND expired_at IS NULL AND job_schema_version = #{QUES[@dialect][:schema]}" if QUES[@dialect][:schema]
    Que.execute(sql, [queue]).first.values.first.to_i.positive?
  end

  # Que 1.x/2.x: their Locker, until no job of the queue is due.
  def op_work(req)
    raise NotImplementedError, 'the Que 0.14 row works with work_one' if @dialect == '0.14'

    queue = req.fetch('queue')
    started = Time.now
    workers = Integer(req.fetch('workers', 1))
    locker = Que::Locker.new(queues: [queue], poll_interval: 0.05, worker_priorities: [nil] * workers)
    result = wait_drained(req, started) { !due?(queue) }
    locker.stop!
    result
  end

  # Not a protocol op: tools/record_activejob_fixtures.py asks it what this Rails writes for
  # each SPEC (ActiveJob::Arguments.serialize) and what a job of it receives back.
  def op_aj_serialize(req)
    req.fetch('specs').map do |spec|
      written = ActiveJob::Arguments.serialize(QueConformance::Spec.build(spec))
      read = ActiveJob::Arguments.deserialize(JSON.parse(JSON.generate(written)))
      { arguments: spec, written: written, received: QueConformance::Spec.describe(read) }
    end.then { |cases| { cases: cases } }
  end

  def op_stop(_req)
    {}
  end
end

serve(Testee.new, PROTOCOL_OUT)
