print("kvduel")
