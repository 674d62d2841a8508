# frozen_string_literal: true

# A Rails app's side of a shared Que queue, for the ActiveJob checks: the real ActiveJob
# (Debian's ruby-activejob, Rails 6.1) on the real Que, 0.14.3 (`probe.rb 0`, from
# QUE_RUBY_LIB or the gem) or 2.4.1 (`probe.rb 2`, from QUE2_RUBY_LIB or the gem).
#
# One JSON request on stdin, one JSON answer on stdout:
#   {"op": "enqueue", "database_url": ..., "jobs": [{"spec": SPEC, "queue": ..., "priority": ..., "wait": s}]}
#     perform_later of QueRails::Probe with the arguments SPEC describes -> {"job_ids": [...]}
#   {"op": "work", "database_url": ..., "queue": ..., "results_table": ..., "deadline_s": ...}
#     works the queue until no job is due; QueRails::Probe writes what it received, described
#     (SPEC), to the results table; QueRails::Boom raises -> {"worked": true}
# When Que or ActiveJob cannot load: {"unavailable": "<reason>"}.
#
# SPEC, a value described with its Ruby type (what the two sides compare):
#   ["nil"] ["true"] ["false"] ["int", "12"] ["float", 1.5] ["str", "s"] ["sym", "s"]
#   ["decimal", "1.5"] ["array", [SPEC...]] ["hash", KIND, [[KEY, SPEC]...]] with KIND
#   "plain", "kwargs" or "indifferent" and KEY ["str", k] or ["sym", k];
#   ["time", CLASS, "<UTC iso8601 to the nanosecond>", offset_seconds, zone_name_or_nil]
#   ["date", "2026-01-02"] ["duration", value_spec, parts_hash_spec] ["gid", uri] ["module", name]
# A job's arguments are ["array", [...]]; its keyword arguments are a last "kwargs" hash.

require 'json'

MAJOR = ARGV.first == '0' ? '0' : '2'
QUE_VERSION = MAJOR == '0' ? '0.14' : '2.4'
LIB_VARIABLE = MAJOR == '0' ? 'QUE_RUBY_LIB' : 'QUE2_RUBY_LIB'

def answer(hash)
  $stdout.write(JSON.generate(hash))
  $stdout.flush
end

request = JSON.parse($stdin.read)
begin
  require 'active_job'
  require 'active_support/time'
  require 'global_id'
  require 'bigdecimal'
  if ENV[LIB_VARIABLE] && !ENV[LIB_VARIABLE].empty?
    $LOAD_PATH.unshift(ENV[LIB_VARIABLE])
  else
    gem 'que', "~> #{QUE_VERSION}.1"
  end
  require 'pg'
  require 'que'
  require 'active_job/queue_adapters/que_adapter'
  raise LoadError, "Que #{Que::Version rescue Que::VERSION} is not #{QUE_VERSION}" unless (Que::Version rescue Que::VERSION).start_with?(QUE_VERSION)
rescue LoadError => e
  where = ENV[LIB_VARIABLE] ? "#{LIB_VARIABLE}=#{ENV[LIB_VARIABLE]}" : "the installed gems (#{LIB_VARIABLE} is not set)"
  answer(unavailable: "cannot load ActiveJob on Que #{QUE_VERSION} from #{where}: #{e.message.lines.first.to_s.strip}")
  exit 0
end

Time.zone_default = Time.find_zone!('UTC') # config.time_zone: every thread's Time.zone
GlobalID.app = 'que-interop'
ActiveJob::Base.queue_adapter = :que
ActiveJob::Base.logger = Logger.new($stderr, level: Logger::WARN)
Que.logger = Logger.new($stderr, level: Logger::WARN) if Que.respond_to?(:logger=)

module QueRails
  # A record GlobalID can find again: its id is all it has.
  class Thing
    include GlobalID::Identification
    attr_reader :id

    def initialize(id)
      @id = id
    end

    def self.find(id)
      new(id)
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
      when Thing then ['gid', value.to_global_id.to_s]
      when Module then ['module', value.name]
      else ['unknown', value.class.name, value.inspect]
      end
    end

    def pairs(hash)
      hash.map { |key, value| [[key.is_a?(Symbol) ? 'sym' : 'str', key.to_s], describe(value)] }
    end
  end

  class << self
    attr_accessor :results_table
  end

  # Writes what it received, described, to the results table.
  class Probe < ActiveJob::Base
    def perform(*arguments)
      received = Spec.describe(arguments)
      conn = PG.connect(ENV.fetch('QUE_RAILS_DATABASE_URL'))
      conn.exec_params(
        "INSERT INTO #{QueRails.results_table} (job_id, received, executions, queue_name, priority) " \
        'VALUES ($1, $2, $3, $4, $5)',
        [job_id, JSON.generate(received), executions, queue_name, priority]
      )
    ensure
      conn&.close
    end
    ruby2_keywords(:perform)
  end

  # Fails, with no retry_on: the error goes to Que, which retries the wrapper row.
  class Boom < ActiveJob::Base
    def perform(*)
      raise ArgumentError, 'boom from Rails'
    end
  end
end

def connect(url)
  if MAJOR == '0'
    Que.connection = PG.connect(url)
    Que.mode = :off
  else
    Que.connection_proc = proc { |&block| block.call(Thread.current[:que_rails_connection] ||= PG.connect(url)) }
  end
end

def due?(queue)
  sql = 'SELECT count(*) AS n FROM public.que_jobs WHERE queue = $1 AND run_at <= now()'
  sql += ' AND finished_at IS NULL AND expired_at IS NULL' if MAJOR == '2'
  Que.execute(sql, [queue]).first.values.first.to_i.positive?
end

def work(request)
  queue = request.fetch('queue')
  deadline = Time.now + request.fetch('deadline_s', 60)
  if MAJOR == '0'
    while Time.now < deadline
      result = Que::Job.work(queue)
      break if result[:event] == :job_unavailable && !due?(queue)
    end
  else
    locker = Que::Locker.new(queues: [queue], poll_interval: 0.05, worker_priorities: [nil])
    # A job's row stays due until its run destroys it (or its failure moves run_at on).
    sleep 0.05 while Time.now < deadline && due?(queue)
    locker.stop!
  end
  { worked: true }
end

connect(request.fetch('database_url'))
ENV['QUE_RAILS_DATABASE_URL'] = request.fetch('database_url')
case request.fetch('op')
when 'enqueue'
  ids = request.fetch('jobs').map do |job|
    klass = QueRails.const_get(job.fetch('job_class', 'Probe'))
    options = { queue: job.fetch('queue', 'default') }
    options[:priority] = job['priority'] if job['priority']
    options[:wait] = job['wait'] if job['wait']
    arguments = QueRails::Spec.build(job.fetch('spec'))
    klass.set(**options).perform_later(*arguments).job_id
  end
  answer(job_ids: ids)
when 'work'
  QueRails.results_table = request.fetch('results_table')
  answer(work(request))
else
  raise ArgumentError, "no op #{request['op']}"
end
