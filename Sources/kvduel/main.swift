print("kvduel: under construction")
