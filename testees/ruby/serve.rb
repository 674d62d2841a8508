# frozen_string_literal: true

# The testee protocol's loop (conformance/PROTOCOL.md), shared by the Ruby testees: one JSON
# request per line on stdin, one response per line on `out`; every failure is a response.

require 'json'

class UnavailableError < StandardError; end

# Que 1.x was written for Ruby 2, where a hash passed last to a method that takes only
# keywords becomes its keywords. Its Worker#work_job calls Que.log(log_message) so, and on
# Ruby 3 that raises after every job. Prepended to Que's singleton by the testees that run
# Que 1.4.1 (ruby-1.4.1, and the rails row on dialect 1); nothing else of Que is touched.
module QueConformanceRuby2Log
  def log(hash = nil, **keywords)
    hash ? super(**hash, **keywords) : super(**keywords)
  end
end

# The `work` op's wait: until the block says the queue is drained (and min_duration_ms has
# passed) or deadline_ms passes; its result. For the testees whose `work` runs a Que Locker.
def wait_drained(req, started = Time.now)
  deadline = started + req.fetch('deadline_ms', 60_000) / 1000.0
  minimum = started + req.fetch('min_duration_ms', 0) / 1000.0
  drained = false
  while Time.now < deadline
    if yield && Time.now >= minimum
      drained = true
      break
    end
    sleep 0.005
  end
  { drained: drained, elapsed_ms: ((Time.now - started) * 1000).round(1) }
end

def serve(testee, out)
  $stdin.each_line do |line|
    next if line.strip.empty?

    id = nil
    op = nil
    begin
      req = JSON.parse(line)
      id = req['id']
      op = req['op']
      method = "op_#{op}"
      raise NotImplementedError, "unknown op #{op.inspect}" unless testee.respond_to?(method)

      response = { id: id, ok: true, result: testee.public_send(method, req) }
    rescue StandardError, NotImplementedError => e
      type = e.is_a?(UnavailableError) ? 'Unavailable' : e.class.name
      response = { id: id, ok: false, error: { type: type, message: e.message } }
    end
    out.puts(JSON.generate(response))
    exit 0 if op == 'stop'
  end
end
