# A Rails app in one file, with the heartbeat endpoint autoscalebot times (see
# docs/heartbeat-endpoint.md). In a real app the controller goes to
# app/controllers/heartbeat_controller.rb, the route to config/routes.rb, the cache store to
# config/environments/production.rb.
#
# Run it: DATABASE_URL=postgres://... REDIS_URL=redis://... PORT=5000 ruby rails_app.rb

require "action_controller/railtie"
require "active_record/railtie"

class HeartbeatApp < Rails::Application
  config.load_defaults 6.1
  config.eager_load = false
  config.logger = Logger.new($stderr)
  config.secret_key_base = ENV.fetch("SECRET_KEY_BASE", "example-only")
  config.hosts.clear
  # config/environments/production.rb
  config.cache_store = :redis_cache_store, { url: ENV.fetch("REDIS_URL"), connect_timeout: 2 }
end
HeartbeatApp.initialize!

# app/controllers/heartbeat_controller.rb
class HeartbeatController < ActionController::API
  # Does what a typical page does, and says 503 when a dependency is down.
  def show
    response.headers["Cache-Control"] = "no-store"
    # Better still: the query your busiest page makes, through its model.
    ActiveRecord::Base.connection.select_value("SELECT 1")
    # The Redis cache store swallows its errors (a page still renders), so ask it plainly.
    Rails.cache.write("autoscalebot:heartbeat", "ok", expires_in: 60) or raise "the cache is down"
    Rails.cache.read("autoscalebot:heartbeat")
    render plain: "ok\n"
  rescue StandardError => error
    logger.warn("Heartbeat failed: #{error.message}")
    render plain: "unavailable\n", status: :service_unavailable
  end
end

# config/routes.rb
HeartbeatApp.routes.draw do
  get "/autoscalebot/heartbeat", to: "heartbeat#show"
end

if $PROGRAM_NAME == __FILE__
  require "rack/handler/webrick"
  Rack::Handler::WEBrick.run(HeartbeatApp, Host: ENV.fetch("HOST", "0.0.0.0"),
                                           Port: Integer(ENV.fetch("PORT", "5000")))
end
