using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class WidgetLimits : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "widget_daily_message_cap",
                table: "buyer_web_settings",
                type: "INTEGER",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "widget_daily_message_cap",
                table: "buyer_web_settings");
        }
    }
}
