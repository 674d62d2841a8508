# frozen_string_literal: true

# The testee protocol's loop (conformance/PROTOCOL.md), shared by the Ruby testees: one JSON
# request per line on stdin, one response per line on `out`; every failure is a response.

require 'json'

class UnavailableError < StandardError; end

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
